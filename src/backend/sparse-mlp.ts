import { panelColumns, type SparsePattern } from './backend.js';
import { referenceBackend } from './reference.js';

/**
 * The kernels of the sparse-MLP program (src/program/sparse-mlp.ts): a whole training step
 * of a chain of sparse fully connected layers in one call, and the evaluation of a data set
 * in one call. They are a program's engine, not tensor kernels: the chain is prepared once
 * per program (its arrays checked and kept), then stepped. The reference implementation
 * below composes the Backend's sparse kernels and is the oracle of the native one.
 */
export interface SparseMlpKernels {
  /**
   * Checks a chain of layers once (each takes the previous one's outputs; sizes; no shared
   * memory) and keeps its arrays for `step` and `evaluate`: the arrays are the caller's and
   * are read and written in place by every later call. `parts` is how many tasks share the
   * first layer's work (the native step splits it by column blocks of about equal nonzeros;
   * the thread count is the natural choice): results are the same for the same `parts` on
   * any number of threads, and may differ in the last bits between different `parts`.
   */
  prepare(layers: readonly SparseMlpLayer[], parts: number): PreparedMlp;

  /**
   * losses.length training steps on consecutive minibatches: step s on the samples
   * indices[from + s·n .. from + (s+1)·n) of src [samples, inputs] with labels from
   * srcLabels. Each step runs every layer (sparse forward, ReLU where `relu`), the softmax
   * cross-entropy of the last layer's outputs, the backward pass adding the gradient of the
   * mean loss to each layer's gvals and gbias, and, with an `update` and a finite loss, the
   * update of vals and bias from their gradients and state (as Backend.adam / sgd, zeroing
   * the gradients; Adam's step count advances by one a step). Writes each step's mean loss
   * into `losses` and stops after a step whose loss is not finite (it makes no update).
   * Every index and label is checked before the first step. Returns the number of steps run.
   *
   * The native step may read the next batch ahead and use it when the next step on the
   * same thread (in this call or the next, of this chain or another with the same inputs)
   * asks for the same rows of the same src: src must not change in place between calls
   * (indices may; the rows are compared).
   */
  step(
    chain: PreparedMlp, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    update: UpdateRule | null, losses: Float64Array,
  ): number;

  /**
   * The gradient of the mean softmax cross-entropy of the samples indices[from .. from + n)
   * of src at every entry of layer l's weight as if it were dense (its entries outside the
   * pattern included: RigL's growth criterion), into outs[l] ([rows, cols] row-major,
   * overwritten) for each layer whose out is not null; the forward and backward passes are
   * a step's, without the update. Changes no weight, gradient or state of the chain.
   * Returns the mean loss. Independent of the thread count; equal to a dense network's
   * gradient up to float summation order.
   */
  denseGrad(
    chain: PreparedMlp, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    outs: readonly (Float32Array | null)[],
  ): number;

  /**
   * The summed softmax cross-entropy and the number of correct predictions (first maximum
   * logit = label) of every sample of src through the chain, in chunks of 64 samples whose
   * sums are added in order: independent of the thread count.
   */
  evaluate(chain: PreparedMlp, src: Float32Array, srcLabels: Int32Array): { loss: number; correct: number };
}

/** A chain checked by one implementation's `prepare`; only that implementation takes it. */
export interface PreparedMlp {
  readonly layers: readonly SparseMlpLayer[];
  readonly parts: number;
}

/** One layer of a sparse MLP: y = act(x·Wᵀ + b), W at its pattern's nonzeros, with its gradients and optimiser state. */
export interface SparseMlpLayer {
  readonly pattern: SparsePattern;
  /** The packed weight values, [nnz] in the pattern's order. */
  readonly vals: Float32Array;
  readonly bias: Float32Array | null;
  readonly relu: boolean;
  /** The packed weight gradient, [nnz]: a step adds to it. */
  readonly gvals: Float32Array;
  /** The bias gradient, [rows], or null (not wanted). */
  readonly gbias: Float32Array | null;
  /** The optimiser state for updates: [m, v] (Adam) or [momentum buffer] (SGD), of the weight (packed) and of the bias. */
  readonly state?: { readonly weight: readonly Float32Array[]; readonly bias: readonly Float32Array[] };
}

/** An optimiser update, with the arguments of Backend.adam / sgd. */
export type UpdateRule =
  | { readonly kind: 'adam'; readonly lr: number; readonly beta1: number; readonly beta2: number; readonly eps: number; readonly step: number }
  | { readonly kind: 'sgd'; readonly lr: number; readonly momentum: number; readonly weightDecay: number };

/** The reference implementation: the Backend's sparse kernels composed, step by step. */
export const referenceSparseMlp: SparseMlpKernels = {
  prepare(layers, parts) {
    checkChain('sparseMlpPrepare', layers);
    if (!(Number.isInteger(parts) && parts >= 1)) throw new RangeError(`sparseMlpPrepare: parts must be a positive integer, got ${parts}`);
    return { layers, parts };
  },

  step(chain, src, srcLabels, indices, from, n, update, losses) {
    const { layers } = chain;
    const steps = losses.length;
    if (steps < 1) throw new RangeError('sparseMlpStep: losses must hold at least one step');
    // Every index and label first, so that a bad one stops the call before any step.
    checkBatch('sparseMlpStep', layers, src, srcLabels, indices, from, steps * n, 'from+n*steps');
    for (let s = 0; s < steps; s++) {
      const loss = (losses[s] = referenceStep(src, srcLabels, indices, from + s * n, n, layers,
        update && update.kind === 'adam' ? { ...update, step: update.step + s } : update));
      if (!Number.isFinite(loss)) return s + 1;
    }
    return steps;
  },

  denseGrad(chain, src, srcLabels, indices, from, n, outs) {
    const { layers } = chain;
    if (outs.length !== layers.length) throw new RangeError(`sparseMlpDenseGrad: expected ${layers.length} outs (one per layer, or null), got ${outs.length}`);
    outs.forEach((o, l) => {
      const { rows, cols } = layers[l].pattern;
      if (o && o.length < rows * cols) throw new RangeError(`sparseMlpDenseGrad: layer ${l} out has ${o.length} elements, needs rows*cols = ${rows * cols}`);
    });
    checkBatch('sparseMlpDenseGrad', layers, src, srcLabels, indices, from, n, 'from+n');
    const lowest = outs.findIndex((o) => o !== null);
    return referencePasses(src, srcLabels, indices, from, n, layers, lowest < 0 ? layers.length : lowest, (l, g, x, ld) => {
      const out = outs[l];
      if (out) denseWeightGrad(g, x, out, layers[l].pattern.rows, layers[l].pattern.cols, n, ld);
    }) / n;
  },

  evaluate(chain, src, srcLabels) {
    const be = referenceBackend;
    const { layers } = chain;
    const inputs = layers[0].pattern.cols, classes = layers[layers.length - 1].pattern.rows;
    const samples = src.length / inputs;
    if (!Number.isInteger(samples)) throw new RangeError(`sparseMlpEval: src has ${src.length} elements, not a whole number of samples of ${inputs}`);
    let loss = 0, correct = 0;
    for (let c0 = 0; c0 < samples; c0 += 64) {
      const m = Math.min(64, samples - c0), ld = Math.max(16, (m + 15) & ~15);
      const labels = srcLabels.subarray(c0, c0 + m);
      for (let i = 0; i < m; i++) {
        if (!(labels[i] >= 0 && labels[i] < classes)) throw new RangeError(`sparseMlpEval: srcLabels[${c0 + i}] = ${labels[i]} is outside [0, ${classes})`);
      }
      let act = new Float32Array(inputs * 64);
      be.toPanels(src.subarray(c0 * inputs, (c0 + m) * inputs), act, m, inputs, ld);
      for (const l of layers) {
        const out = new Float32Array(l.pattern.rows * 64);
        be.sparseForward(l.pattern, l.vals, act, out, l.bias, m, ld, l.relu);
        act = out;
      }
      const logits = new Float32Array(m * classes);
      be.fromPanels(act, logits, m, classes, ld, false);
      loss += be.softmaxXent(logits, labels, m, classes, null, 0);
      correct += be.countCorrect(logits, labels, m, classes);
    }
    return { loss, correct };
  },
};

/** That each layer takes the previous layer's outputs (RangeError naming `fn` otherwise). */
function checkChain(fn: string, layers: readonly SparseMlpLayer[]): void {
  if (layers.length === 0) throw new RangeError(`${fn}: expected at least one layer`);
  layers.forEach((l, i) => {
    if (i > 0 && l.pattern.cols !== layers[i - 1].pattern.rows) {
      throw new RangeError(`${fn}: layer ${i} takes ${l.pattern.cols} inputs but layer ${i - 1} gives ${layers[i - 1].pattern.rows}`);
    }
  });
}

/** That indices[from .. from + count) are rows of src and their labels classes of the chain (RangeError naming `fn` otherwise). */
function checkBatch(
  fn: string, layers: readonly SparseMlpLayer[], src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, count: number, needs: string,
): void {
  const rows = src.length / layers[0].pattern.cols, classes = layers[layers.length - 1].pattern.rows;
  if (from + count > indices.length) throw new RangeError(`${fn}: indices has ${indices.length} elements, needs ${needs} = ${from + count}`);
  for (let i = from; i < from + count; i++) {
    if (!(indices[i] >= 0 && indices[i] < rows)) throw new RangeError(`${fn}: indices[${i}] = ${indices[i]} is outside [0, ${rows})`);
    const label = srcLabels[indices[i]];
    if (!(label >= 0 && label < classes)) throw new RangeError(`${fn}: srcLabels[${indices[i]}] = ${label} is outside [0, ${classes})`);
  }
}

/**
 * The forward pass of the samples indices[from .. from + n) (checked) through the chain,
 * the softmax cross-entropy, and the backward pass down to layer `lowest`: atLayer(l, g,
 * x, ld) gets each layer's output gradient g (after its ReLU) and its input panels x, from
 * the last layer down. Returns the summed loss.
 */
function referencePasses(
  src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number, layers: readonly SparseMlpLayer[],
  lowest: number, atLayer: (l: number, g: Float32Array, x: Float32Array, ld: number) => void,
): number {
  const be = referenceBackend;
  const last = layers[layers.length - 1].pattern;
  const inputs = layers[0].pattern.cols;
  const x = new Float32Array(n * inputs), labels = new Int32Array(n);
  be.gatherRows(src, inputs, indices, from, n, x);
  for (let i = 0; i < n; i++) labels[i] = srcLabels[indices[from + i]];
  const ld = Math.max(16, (n + 15) & ~15), cols = panelColumns(ld);
  const acts = [new Float32Array(inputs * cols)];
  be.toPanels(x, acts[0], n, inputs, ld);
  layers.forEach((l, i) => {
    acts.push(new Float32Array(l.pattern.rows * cols));
    be.sparseForward(l.pattern, l.vals, acts[i], acts[i + 1], l.bias, n, ld, l.relu);
  });
  const logits = new Float32Array(n * last.rows), gradLogits = new Float32Array(n * last.rows);
  be.fromPanels(acts[layers.length], logits, n, last.rows, ld, false);
  const loss = be.softmaxXent(logits, labels, n, last.rows, gradLogits, 1 / n);
  let g = new Float32Array(last.rows * cols);
  be.toPanels(gradLogits, g, n, last.rows, ld);
  for (let i = layers.length - 1; i >= lowest; i--) {
    const l = layers[i];
    if (l.relu) be.reluBackward(g, acts[i + 1], g, g.length);
    atLayer(i, g, acts[i], ld);
    if (i === lowest) break;
    const gx = new Float32Array(l.pattern.cols * cols);
    be.sparseInputGrad(l.pattern, l.vals, g, gx, ld);
    g = gx;
  }
  return loss;
}

/** out [rows, cols] = Σ_c g[r, c]·x[i, c] over the n batch columns of the panels g [rows, ld] and x [cols, ld], in double. */
function denseWeightGrad(g: Float32Array, x: Float32Array, out: Float32Array, rows: number, cols: number, n: number, ld: number): void {
  const at = (a: Float32Array, features: number, f: number, c: number) => a[((c >> 6) * features + f) * 64 + (c & 63)];
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < cols; i++) {
      let sum = 0;
      for (let c = 0; c < n && c < ld; c++) sum += at(g, rows, r, c) * at(x, cols, i, c);
      out[r * cols + i] = sum;
    }
  }
}

/** One step (indices and labels checked): the composition of the Backend's kernels. */
function referenceStep(
  src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
  layers: readonly SparseMlpLayer[], update: UpdateRule | null,
): number {
  const be = referenceBackend;
  const loss = referencePasses(src, srcLabels, indices, from, n, layers, 0, (l, g, x, ld) => {
    be.sparseWeightGrad(layers[l].pattern, g, x, layers[l].gvals, layers[l].gbias, ld);
  });
  if (update && Number.isFinite(loss)) {
    for (const l of layers) {
      if (!l.state) throw new TypeError('sparseMlpStep: an update needs every layer\'s optimiser state');
      const step = (p: Float32Array, grad: Float32Array, [s0, s1]: readonly Float32Array[]) => {
        if (update.kind === 'adam') be.adam(p, grad, s0, s1, null, p.length, update.lr, update.beta1, update.beta2, update.eps, update.step);
        else be.sgd(p, grad, s0, null, p.length, update.lr, update.momentum, update.weightDecay);
      };
      step(l.vals.subarray(0, l.pattern.nnz), l.gvals, l.state.weight);
      if (l.bias && l.gbias) step(l.bias.subarray(0, l.pattern.rows), l.gbias, l.state.bias);
    }
  }
  return loss / n;
}
