/**
 * Sequence ops, forward and backward together (like ops.ts): views and transposes of
 * [batch, time, features] tensors, embeddings, pooling over time, layer normalisation, an
 * LSTM layer unrolled over the whole sequence (back-propagation through all of it), and
 * causal multi-head self-attention. The LSTM's GEMMs go to the backend's matmul and its
 * cell to a sequence kernel, as do layer norm and the whole of attention; the rest (copies,
 * index gathers, small reductions) are plain loops.
 */
import { getBackend } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import { Tensor, recordOp, scratchArray, shapeStr, sizeOf, zeroArray } from './tensor.js';

/** The same values with another shape of the same size (no copy). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  check(sizeOf(shape) === x.size, () => `reshape: ${shapeStr(x)} has ${x.size} values, [${shape.join(', ')}] needs ${sizeOf(shape)}`);
  const y = new Tensor(x.data, shape);
  return recordOp(y, [x], () => x.passGrad(y.grad!));
}

/** out[j, i, :] = x[i, j, :] for x [a, b, c]: batch-major <-> time-major. */
function swapOuter(x: Float32Array, out: Float32Array, a: number, b: number, c: number): void {
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) out.set(x.subarray((i * b + j) * c, (i * b + j + 1) * c), (j * a + i) * c);
}

/** [a, b, c] -> [a, c, b] (a copy): [batch, time, features] <-> [batch, channels, time]. */
export function swapLastAxes(x: Tensor): Tensor {
  check(x.shape.length === 3, () => `swapLastAxes: input must be rank 3, got shape ${shapeStr(x)}`);
  const [a, b, c] = x.shape;
  const y = Tensor.empty([a, c, b]);
  transpose(x.data, y.data, a, b, c);
  return recordOp(y, [x], () => {
    const g = scratchArray(x.size);
    transpose(y.grad!, g, a, c, b);
    x.addGrad(g);
  });
}

/** out[i, k, j] = x[i, j, k] for x [a, b, c]. */
function transpose(x: Float32Array, out: Float32Array, a: number, b: number, c: number): void {
  for (let i = 0; i < a; i++) {
    const o = i * b * c;
    for (let j = 0; j < b; j++) for (let k = 0; k < c; k++) out[o + k * b + j] = x[o + j * c + k];
  }
}

/**
 * Rows of `weight` [vocabulary, dim] picked by token ids: ids [...] (floats holding exact
 * integers, as data sets store them) -> [..., dim]. An id that is not an integer in
 * [0, vocabulary) is the user's error (a model fed another data set's samples).
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  check(weight.shape.length === 2, () => `embedding: weight must be rank 2 [vocabulary, dim], got ${shapeStr(weight)}`);
  const [vocab, dim] = weight.shape;
  const n = ids.size;
  const index = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = ids.data[i];
    if (!(Number.isInteger(v) && v >= 0 && v < vocab)) {
      throw new LthError(`embedding: input ${i} is ${v}, not a token id in [0, ${vocab}) (is the data set one of token ids for this vocabulary?)`);
    }
    index[i] = v;
  }
  const y = Tensor.empty([...ids.shape, dim]);
  for (let i = 0; i < n; i++) y.data.set(weight.data.subarray(index[i] * dim, (index[i] + 1) * dim), i * dim);
  return recordOp(y, [weight], () => {
    const g = weight.ensureGrad(), gy = y.grad!;
    for (let i = 0; i < n; i++) {
      const o = index[i] * dim;
      for (let j = 0; j < dim; j++) g[o + j] += gy[i * dim + j];
    }
  });
}

/** x [n, T, D] + pos[0..T) (pos [maxLength, D]): learned position embeddings. */
export function addPositions(x: Tensor, pos: Tensor): Tensor {
  check(x.shape.length === 3 && pos.shape.length === 2 && pos.shape[1] === x.shape[2],
    () => `addPositions: input ${shapeStr(x)} and positions ${shapeStr(pos)} must be [batch, time, dim] and [maxLength, dim]`);
  const [n, T, D] = x.shape;
  check(T <= pos.shape[0], () => `addPositions: ${T} positions, the embedding has ${pos.shape[0]}`);
  const y = Tensor.empty(x.shape);
  for (let b = 0; b < n; b++) for (let i = 0; i < T * D; i++) y.data[b * T * D + i] = x.data[b * T * D + i] + pos.data[i];
  return recordOp(y, [x, pos], () => {
    const gy = y.grad!;
    if (x.requiresGrad) x.addGrad(gy);
    if (pos.requiresGrad) {
      const gp = pos.ensureGrad();
      for (let b = 0; b < n; b++) for (let i = 0; i < T * D; i++) gp[i] += gy[b * T * D + i];
    }
  });
}

/** [n, C, T] -> [n, C]: the maximum over time of each channel (the first maximum; NaN wins). */
export function maxOverTime(x: Tensor): Tensor {
  check(x.shape.length === 3 && x.shape[2] >= 1, () => `maxOverTime: input must be [batch, channels, time], got ${shapeStr(x)}`);
  const [n, C, T] = x.shape;
  const y = Tensor.empty([n, C]);
  const arg = new Int32Array(n * C);
  for (let r = 0; r < n * C; r++) {
    let best = r * T;
    for (let t = 1; t < T && !Number.isNaN(x.data[best]); t++) {
      const v = x.data[r * T + t];
      if (v > x.data[best] || Number.isNaN(v)) best = r * T + t;
    }
    arg[r] = best;
    y.data[r] = x.data[best];
  }
  return recordOp(y, [x], () => {
    const g = x.ensureGrad();
    for (let r = 0; r < n * C; r++) g[arg[r]] += y.grad![r];
  });
}

/** [n, T, D] -> [n, D]: the mean over time. */
export function meanOverTime(x: Tensor): Tensor {
  check(x.shape.length === 3 && x.shape[1] >= 1, () => `meanOverTime: input must be [batch, time, dim], got ${shapeStr(x)}`);
  const [n, T, D] = x.shape;
  const y = Tensor.empty([n, D]);
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < D; j++) {
      let s = 0;
      for (let t = 0; t < T; t++) s += x.data[(b * T + t) * D + j];
      y.data[b * D + j] = s / T;
    }
  }
  return recordOp(y, [x], () => {
    const { grad: g, overwrite } = x.gradSink(), gy = y.grad!;
    for (let b = 0; b < n; b++) {
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < D; j++) {
          const i = (b * T + t) * D + j, v = gy[b * D + j] / T;
          g[i] = overwrite ? v : g[i] + v;
        }
      }
    }
  });
}

/** Layer normalisation over the last axis (PyTorch's nn.LayerNorm over one dimension). */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const D = x.shape[x.shape.length - 1];
  check(gamma.size === D && beta.size === D, () => `layerNorm: weight ${shapeStr(gamma)} and bias ${shapeStr(beta)} must have ${D} values (the input's last axis, ${shapeStr(x)})`);
  const rows = x.size / D, be = getBackend();
  const y = Tensor.empty(x.shape);
  const mean = scratchArray(rows), rstd = scratchArray(rows);
  be.layerNorm(x.data, gamma.data, beta.data, y.data, mean, rstd, rows, D, eps);
  return recordOp(y, [x, gamma, beta], () => {
    const sink = x.gradSink();  // overwritten when nothing has reached it yet (no zeroing pass)
    be.layerNormBackward(x.data, gamma.data, mean, rstd, y.grad!, sink.grad, gamma.requiresGrad ? gamma.ensureGrad() : null,
      beta.requiresGrad ? beta.ensureGrad() : null, rows, D, !sink.overwrite);
  });
}

/**
 * One LSTM layer over whole sequences, batch first as nn.LSTM(batch_first=True): x [n, T, I]
 * -> h [n, T, H], from zero initial state, with PyTorch's parameters weight_ih [4H, I],
 * weight_hh [4H, H], bias_ih and bias_hh [4H] (gates i, f, g, o). Internally time-major:
 * one GEMM gives x·W_ihᵀ for every step, then the backend's lstmSequence runs the recurrence
 * (each step adds h_{t-1}·W_hhᵀ and runs the cell). Backward goes through every step
 * (truncated BPTT at the sample's length) and ends with one GEMM each for W_ih's and W_hh's
 * gradients and the input's.
 */
export function lstm(x: Tensor, wih: Tensor, whh: Tensor, bih: Tensor, bhh: Tensor): Tensor {
  check(x.shape.length === 3, () => `lstm: input must be [batch, time, features], got ${shapeStr(x)}`);
  const [n, T, I] = x.shape;
  const H = whh.shape[1];
  check(wih.shape.length === 2 && wih.shape[0] === 4 * H && wih.shape[1] === I && whh.shape[0] === 4 * H && bih.size === 4 * H && bhh.size === 4 * H,
    () => `lstm: weights ${shapeStr(wih)}, ${shapeStr(whh)} do not fit input ${shapeStr(x)} and ${H} hidden units`);
  const be = getBackend();
  const G = 4 * H, rows = n * T;
  const xt = scratchArray(rows * I);
  swapOuter(x.data, xt, n, T, I); // [T, n, I]
  const bias = scratchArray(G);
  for (let j = 0; j < G; j++) bias[j] = bih.data[j] + bhh.data[j];
  const gates = scratchArray(rows * G); // [T, n, 4H]: pre-activations, then the cells' activations
  be.matmul(xt, wih.data, gates, rows, I, G, false, true, false);
  be.biasAct(gates, bias, gates, rows, G, false);
  const cs = scratchArray(rows * H), hs = scratchArray(rows * H); // [T, n, H]
  be.lstmSequence(gates, whh.data, cs, hs, n, T, H);
  const y = Tensor.empty([n, T, H]);
  swapOuter(hs, y.data, T, n, H);
  return recordOp(y, [x, wih, whh, bih, bhh], () => {
    const gh = scratchArray(rows * H);
    swapOuter(y.grad!, gh, n, T, H); // [T, n, H]
    const dgates = scratchArray(rows * G);
    be.lstmSequenceBackward(gates, cs, whh.data, gh, dgates, n, T, H);
    // W_hh's gradient Σ_t dg_tᵀ·h_{t-1} as one product over all (T-1)·n rows: per-step
    // products of k = n would pack their operands T times for little work each.
    if (whh.requiresGrad && T > 1) be.matmul(dgates.subarray(n * G), hs, whh.ensureGrad(), G, (T - 1) * n, H, true, false, true);
    if (wih.requiresGrad) be.matmul(dgates, xt, wih.ensureGrad(), G, rows, I, true, false, true);
    if (bih.requiresGrad) be.sumRows(dgates, bih.ensureGrad(), rows, G, true);
    if (bhh.requiresGrad) be.sumRows(dgates, bhh.ensureGrad(), rows, G, true);
    if (x.requiresGrad) {
      const dxt = scratchArray(rows * I), dx = scratchArray(rows * I);
      be.matmul(dgates, wih.data, dxt, rows, G, I, false, false, false);
      swapOuter(dxt, dx, T, n, I);
      x.addGrad(dx);
    }
  });
}

/**
 * Causal multi-head self-attention on packed projections: qkv [n, T, 3D] (queries, keys,
 * values side by side, as nn.MultiheadAttention's in_proj gives them) -> [n, T, D], each of
 * `heads` heads of D/heads features attending to its own and earlier positions with
 * softmax(Q·Kᵀ/√(D/heads))·V. The heads' outputs are concatenated (before out_proj).
 */
export function causalAttention(qkv: Tensor, heads: number): Tensor {
  check(Number.isInteger(heads) && heads >= 1 && qkv.shape.length === 3 && qkv.shape[2] % (3 * heads) === 0,
    () => `causalAttention: input must be [batch, time, 3·dim] with dim divisible by ${heads} heads, got ${shapeStr(qkv)}`);
  const [n, T, D3] = qkv.shape;
  const D = D3 / 3, be = getBackend();
  // Per (sample, head): the [T, dh] queries (scaled), keys and values, and the attention
  // [T, T], which the backward pass reads.
  const q = scratchArray(n * T * D), k = scratchArray(n * T * D), v = scratchArray(n * T * D), p = scratchArray(n * heads * T * T);
  const y = Tensor.empty([n, T, D]);
  be.causalAttention(qkv.data, y.data, q, k, v, p, n, T, heads, D);
  return recordOp(y, [qkv], () => {
    const sink = qkv.gradSink();  // overwritten when nothing has reached it yet (no zeroing pass)
    be.causalAttentionBackward(y.grad!, q, k, v, p, sink.grad, n, T, heads, D, !sink.overwrite);
  });
}
