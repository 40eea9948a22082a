/**
 * The kernel interface. Every numerical kernel of lth sits behind it; kernels write
 * into caller-provided buffers and never allocate. `reference` (plain TypeScript) is
 * the oracle every fast kernel is tested against.
 *
 * Layout: row-major Float32Array everywhere.
 */
export interface Backend {
  readonly name: 'reference' | 'native';

  /**
   * C[m×n] = op(A)[m×k] · op(B)[k×n], or C += ... when `accumulate`.
   * op(A) = A (stored m×k) or Aᵀ (A stored k×m, when transA);
   * op(B) = B (stored k×n) or Bᵀ (B stored n×k, when transB).
   */
  matmul(
    a: Float32Array, b: Float32Array, c: Float32Array,
    m: number, k: number, n: number,
    transA: boolean, transB: boolean, accumulate: boolean,
  ): void;

  /** out[i,j] = x[i,j] + bias[j], then max(0, ·) when `relu`. `out` may be `x`. */
  biasAct(x: Float32Array, bias: Float32Array, out: Float32Array, rows: number, cols: number, relu: boolean): void;

  /** gradIn[i] = y[i] > 0 ? gradOut[i] : 0 (y is the ReLU output). `gradIn` may be `gradOut`. */
  reluBackward(gradOut: Float32Array, y: Float32Array, gradIn: Float32Array, n: number): void;

  /** out[j] = Σ_i x[i,j] (or out[j] += ... when `accumulate`): the bias gradient. */
  sumRows(x: Float32Array, out: Float32Array, rows: number, cols: number, accumulate: boolean): void;

  /**
   * Softmax cross-entropy over `rows` samples of `cols` classes. Returns the summed
   * loss Σ_i -log softmax(x_i)[label_i] (NaN if any logit is NaN). When `grad` is
   * given, writes grad[i,j] = (softmax(x_i)[j] - [j = label_i]) · gradScale.
   */
  softmaxXent(
    logits: Float32Array, labels: Int32Array, rows: number, cols: number,
    grad: Float32Array | null, gradScale: number,
  ): number;

  /** Number of rows whose argmax (first maximum) equals the label. */
  countCorrect(logits: Float32Array, labels: Int32Array, rows: number, cols: number): number;

  /**
   * The indices of the `count` entries of smallest |values| (of largest, when `largest`)
   * among those where (mask ≠ 0) is `among` (1: the kept entries, 0: the pruned ones),
   * written into out[0..count) in increasing order; ties go to the lower index, and NaN
   * ranks as the largest magnitude. A RangeError when fewer entries are eligible. (Dynamic
   * sparse training's drop and growth.)
   */
  selectByMagnitude(values: Float32Array, mask: Float32Array, among: 0 | 1, count: number, largest: boolean, out: Int32Array): void;

  /**
   * The same among every entry i of `values`, each standing for index at[i] (distinct,
   * non-negative): the at[i] of the `count` entries of smallest |values[i]| (of largest,
   * when `largest`), ties to the lower at[i], NaN the largest magnitude, written into
   * out[0..count) in increasing order. A RangeError when count exceeds the entries, at has
   * a negative index, or the chosen entries repeat one (a repeat among the others may go
   * unnoticed). (The drop among a sparse layer's packed weights, at their flat indices.)
   */
  selectByMagnitudeAt(values: Float32Array, at: Int32Array, count: number, largest: boolean, out: Int32Array): void;

  /**
   * One Adam step (PyTorch semantics, no weight decay), `step` counted from 1:
   * m ← β1·m + (1-β1)·g; v ← β2·v + (1-β2)·g²;
   * p ← p - lr/(1-β1^step) · m / (√v/√(1-β2^step) + eps).
   * Where mask[i] == 0, p, m and v are set to 0 instead (pruned weights stay zero).
   * The gradient is consumed: grad is all zeros afterwards (ready for the next step).
   */
  adam(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, mask: Float32Array | null,
    n: number, lr: number, beta1: number, beta2: number, eps: number, step: number,
  ): void;

  /**
   * One SGD step (PyTorch semantics): g' = g + wd·p; buf ← momentum·buf + g'; p ← p - lr·buf.
   * (buf starts at zero, so the first step gives buf = g' as in PyTorch.)
   * Where mask[i] == 0, p and buf are set to 0 instead. Like adam, zeroes grad.
   */
  sgd(
    param: Float32Array, grad: Float32Array, buf: Float32Array, mask: Float32Array | null,
    n: number, lr: number, momentum: number, weightDecay: number,
  ): void;

  /**
   * Asks the OS to back `array` (fresh, not yet written) with 2 MiB pages where it can: a
   * data set's samples are read at random rows, one TLB miss per row with 4 KiB pages.
   * A hint: false where unsupported; the reference backend never asks.
   */
  adviseHugePages(array: Float32Array): boolean;

  /**
   * The rows of a minibatch: dst[b·rowSize + j] = src[indices[from + b]·rowSize + j] for
   * b < count, j < rowSize (rowSize ≥ 1). An index outside src's rows is a RangeError.
   */
  gatherRows(src: Float32Array, rowSize: number, indices: Int32Array, from: number, count: number, dst: Float32Array): void;

  /** x[i] = mask[i] == 0 ? 0 : x[i]. */
  applyMask(x: Float32Array, mask: Float32Array, n: number): void;

  // ---------------------------------------------------------------- convolution (NCHW)

  /**
   * im2col of one image x [channels, height, width] for a kh×kw kernel:
   * col[(c·kh + i)·kw + j, oy·outW + ox] = x[c, oy·strideH - padH + i, ox·strideW - padW + j],
   * 0 where that falls outside the image; outH = ⌊(height + 2·padH - kh) / strideH⌋ + 1 and
   * outW likewise. col is [channels·kh·kw, outH·outW], so conv forward is W[out, c·kh·kw] · col.
   */
  im2col(
    x: Float32Array, col: Float32Array, channels: number, height: number, width: number,
    kh: number, kw: number, strideH: number, strideW: number, padH: number, padW: number,
  ): void;

  /**
   * The adjoint of im2col (col2im): x[c, y, x] += every col entry that im2col copies from
   * x[c, y, x] (entries that fall in the padding are dropped). Always accumulates into `x`.
   */
  col2im(
    col: Float32Array, x: Float32Array, channels: number, height: number, width: number,
    kh: number, kw: number, strideH: number, strideW: number, padH: number, padW: number,
  ): void;

  /**
   * Convolution (cross-correlation) of a batch, any kernel, stride and zero padding:
   * x [n, inChannels, height, width] -> out [n, outChannels, outH, outW] (outH =
   * ⌊(height + 2·padH - kh) / strideH⌋ + 1, outW likewise), overwritten:
   *   out[b,o,oy,ox] = Σ_{c,i,j} x[b, c, oy·strideH - padH + i, ox·strideW - padW + j] · weight[o,c,i,j]
   * (0 outside the image), weight [outChannels, inChannels, kh, kw]; then, when `bias` or
   * `relu`, channelBiasAct's arithmetic (a null bias adds 0). With `relu` and a `reluMask`
   * (reluMaskBytes(n, outChannels·outH·outW) bytes), the ReLU's mask is written there as
   * bits for conv2dBackward: value k of image b (k over [outChannels, outH, outW]) is bit
   * k % 8 of byte b·⌈outChannels·outH·outW / 8⌉ + ⌊k / 8⌋, set where out > 0 (clear for NaN),
   * and an image's bits past its values clear. The native kernel is im2col + matmul image
   * by image, bit for bit (the images split over the pool).
   */
  conv2d(
    x: Float32Array, weight: Float32Array, bias: Float32Array | null, out: Float32Array,
    n: number, inChannels: number, outChannels: number, height: number, width: number,
    kh: number, kw: number, strideH: number, strideW: number, padH: number, padW: number, relu: boolean,
    reluMask: Uint8Array | null,
  ): void;

  /**
   * The gradients of conv2d from gradOut [n, outChannels, outH, outW], the gradient of its
   * output y. First its bias and ReLU: with a `reluMask` (the forward's ReLU, its mask as
   * conv2d wrote it), g = gradOut masked to 0 where the mask's bit is clear (else g =
   * gradOut), and gradBias[c] += Σ_b Σ_k g[b,c,k] when gradBias is given, as
   * channelBiasActBackward would leave them, bit for bit; gradOut itself is only read.
   * Then gradWeight += Σ_b g_b · col_bᵀ, and gradIn = col2im(weightᵀ · g_b) per image (added
   * to gradIn when `accumulateIn`, else written over it); gradIn, gradWeight and gradBias
   * may each be null, reluMask when there is no ReLU. The native kernel takes the activation's backward
   * an image at a time, while that image's gradient is in cache for the products; it sums
   * the weight gradient's images in up to 8 groups fixed by the sizes (each group in image
   * order, then the groups in order), so it does not depend on the thread count; its input
   * gradient is im2col/matmul/col2im's, bit for bit.
   */
  conv2dBackward(
    x: Float32Array, weight: Float32Array, gradOut: Float32Array, gradIn: Float32Array | null, gradWeight: Float32Array | null,
    n: number, inChannels: number, outChannels: number, height: number, width: number,
    kh: number, kw: number, strideH: number, strideW: number, padH: number, padW: number, accumulateIn: boolean,
    reluMask: Uint8Array | null, gradBias: Float32Array | null,
  ): void;

  /**
   * Stride-1 3×3 convolution (cross-correlation) of a batch with zero padding `pad` on
   * every side: x [n, inChannels, height, width] -> out [n, outChannels, outH, outW],
   * outH = height + 2·pad - 2 (outW likewise):
   *   out[b,o,y,x] (+)= Σ_{c,i,j} x[b, c, y - pad + i, x - pad + j] · K[o,c,i,j]
   * (0 outside the image), adding to `out` when `accumulate`. K is `weight` stored
   * [outChannels, inChannels, 3, 3]; with `flip`, weight is stored [inChannels,
   * outChannels, 3, 3] and K[o,c,i,j] = weight[c, o, 2-i, 2-j], so that
   * conv3x3(gradOut, W, gradIn, n, out, in, outH, outW, 2 - pad, true, true) is the input
   * gradient of the convolution by W with padding pad ≤ 2.
   * The native kernel uses Winograd's F(tile×tile, 3×3) (native/winograd.cc), `tile` 2 or 4
   * (the reference computes the direct sum for either): with tile 2 its rounding differs
   * from the direct sum's by a few units in the last place, with tile 4 by some tens (the
   * transforms scale terms by up to 25 before they cancel); a NaN or infinity in x reaches
   * every output of the tile×tile output tiles whose (tile+2)² input patch holds it.
   * With `bias` ([outChannels]) each stored value then gets its channel's bias added, and
   * with `relu` it becomes max(0, ·) (NaN stays NaN), as channelBiasAct would do after the
   * call, bit for bit, without a second pass over `out`.
   */
  conv3x3(
    x: Float32Array, weight: Float32Array, out: Float32Array, n: number, inChannels: number, outChannels: number,
    height: number, width: number, pad: number, flip: boolean, accumulate: boolean, tile: 2 | 4,
    bias: Float32Array | null, relu: boolean,
  ): void;

  /**
   * conv3x3 (no flip, no accumulate, the given tile) with its bias and ReLU, followed by
   * 2×2 max pooling with stride 2, in one call: the pooled [n, outChannels, outH/2,
   * outW/2] values are bitwise those of conv3x3 into a buffer then maxPool2d(…, 2, 2),
   * without the unpooled output ever being stored; outH and outW must be even, and
   * multiples of 4 with tile 4. argmax (the pooled size) receives each window's winner as
   * 2·row + column within it (0 to 3), the first maximum in row-major order (the first NaN
   * if there is one), as maxPool2dBackward would recompute it.
   */
  conv3x3Pool(
    x: Float32Array, weight: Float32Array, pooled: Float32Array, argmax: Uint8Array, n: number, inChannels: number,
    outChannels: number, height: number, width: number, pad: number, tile: 2 | 4, bias: Float32Array | null, relu: boolean,
  ): void;

  /**
   * The backward pass of conv3x3Pool's pooling and activation: gradOut [n, channels,
   * height, width] (the unpooled size, even) is overwritten with gradPooled at each
   * window's argmax (0 there too where `relu` and the pooled value is not above 0) and 0
   * elsewhere, then, when gradBias is given, gradBias[c] += its sums per channel. Bitwise
   * what zero-filling gradOut, maxPool2dBackward and channelBiasActBackward leave.
   */
  maxPool2dActBackward(
    gradPooled: Float32Array, pooled: Float32Array, argmax: Uint8Array, gradOut: Float32Array, gradBias: Float32Array | null,
    n: number, channels: number, height: number, width: number, relu: boolean,
  ): void;

  /**
   * The backward pass of a first layer, a convolution by conv2d (x [n, inChannels, inHeight,
   * inWidth] -> y [n, channels, height, width], the given kernel, stride and padding, with its
   * bias, and the ReLU whose mask conv2d wrote to reluMask, if any), taken from the gradient gradOut [n, outChannels, outH, outW] of the 3×3
   * convolution that reads y (weight [outChannels, channels, 3, 3], padding `pad` ≤ 2, outH =
   * height + 2·pad - 2): y's gradient is the input gradient conv3x3(gradOut, weight, ·, n,
   * outChannels, channels, outH, outW, 2 - pad, true, false, tile), and then gradWeight and
   * gradBias (either may be null) receive what conv2dBackward(x, ·, that, null, gradWeight, …,
   * reluMask, gradBias) adds. Nothing else is written: y's gradient is never stored, the native
   * kernel hands each image's on to the first layer's products while it is in cache. Its
   * weight gradient sums the images in blocks fixed by the geometry, so it does not depend on
   * the thread count; it rounds as the two calls do up to that order.
   */
  conv3x3ThroughConv2d(
    gradOut: Float32Array, weight: Float32Array, x: Float32Array, reluMask: Uint8Array | null,
    gradWeight: Float32Array | null, gradBias: Float32Array | null,
    n: number, outChannels: number, channels: number, height: number, width: number, pad: number, tile: 2 | 4,
    inChannels: number, inHeight: number, inWidth: number, kh: number, kw: number,
    strideH: number, strideW: number, padH: number, padW: number,
  ): void;

  /**
   * The weight gradient of conv3x3 (no flip): gradWeight [outChannels, inChannels, 3, 3] +=
   *   Σ_{b,y,x} gradOut[b,o,y,x] · x[b, c, y - pad + i, x - pad + j]
   * (0 outside the image), x [n, inChannels, height, width], gradOut [n, outChannels,
   * outH, outW] as in conv3x3. Always accumulates. The native kernel uses F(tile×tile,
   * 3×3) too (rounding as for conv3x3); its sum over the batch runs in groups fixed by the geometry.
   */
  conv3x3WeightGrad(
    x: Float32Array, gradOut: Float32Array, gradWeight: Float32Array, n: number, inChannels: number, outChannels: number,
    height: number, width: number, pad: number, tile: 2 | 4,
  ): void;

  /**
   * NCHW data [n, channels, size] (size = H·W): out[i,c,k] = x[i,c,k] + bias[c], then
   * max(0, ·) when `relu` (NaN stays NaN). `out` may be `x`.
   */
  channelBiasAct(x: Float32Array, bias: Float32Array, out: Float32Array, n: number, channels: number, size: number, relu: boolean): void;

  /** out[c] = Σ_i Σ_k x[i,c,k] (or out[c] += ... when `accumulate`): the per-channel bias gradient of NCHW data. */
  sumChannels(x: Float32Array, out: Float32Array, n: number, channels: number, size: number, accumulate: boolean): void;

  /**
   * The backward pass of channelBiasAct, in place on NCHW data [n, channels, size]: with
   * `relu`, gradOut[i] = 0 where y[i] <= 0 (reluBackward's rule); then, when gradBias is
   * given, gradBias[c] += Σ_i Σ_k gradOut[i,c,k] (sumChannels' sums, bit for bit). One
   * pass over gradOut instead of reluBackward's and sumChannels'.
   */
  channelBiasActBackward(
    gradOut: Float32Array, y: Float32Array, gradBias: Float32Array | null, n: number, channels: number, size: number, relu: boolean,
  ): void;

  /**
   * Max pooling of `planes` planes [height, width] with a k×k window and the given stride,
   * no padding: out [planes, outH, outW], outH = ⌊(height - k) / stride⌋ + 1 (outW likewise).
   * A NaN in a window wins (the output is NaN), as in PyTorch.
   */
  maxPool2d(x: Float32Array, out: Float32Array, planes: number, height: number, width: number, k: number, stride: number): void;

  /**
   * The gradient of maxPool2d: for each window, gradIn[argmax] += gradOut[window], where the
   * argmax is recomputed from x: the first maximum in row-major window order (the first NaN
   * if there is one). Always accumulates into `gradIn`.
   */
  maxPool2dBackward(
    x: Float32Array, gradOut: Float32Array, gradIn: Float32Array,
    planes: number, height: number, width: number, k: number, stride: number,
  ): void;

  // ---------------------------------------------------------------- batch norm, residual addition, average pooling (NCHW)

  /**
   * Per-channel statistics of NCHW data [n, channels, size] over its m = n·size entries of
   * each channel (m ≥ 1): mean[c] = Σ x / m and the biased variance[c] = Σ (x - mean[c])² / m,
   * in two passes (no cancellation between Σx² and (Σx)²). NaN propagates.
   */
  channelMoments(x: Float32Array, mean: Float32Array, variance: Float32Array, n: number, channels: number, size: number): void;

  /**
   * The affine map of batch normalisation, with an optional residual added before the
   * activation: out[i,c,k] = x[i,c,k]·scale[c] + shift[c] (+ residual[i,c,k], rounded as a
   * second float addition), then max(0, ·) when `relu` (NaN stays NaN). `out` may be `x` or
   * `residual`.
   */
  channelAffineAct(
    x: Float32Array, scale: Float32Array, shift: Float32Array, residual: Float32Array | null, out: Float32Array,
    n: number, channels: number, size: number, relu: boolean,
  ): void;

  /**
   * The gradient of y = act(weight[c]·x̂ + bias[c] (+ residual)), x̂ = (x - mean[c])·invstd[c],
   * over NCHW data [n, channels, size], m = n·size: with g = gradOut, masked to the entries
   * where y > 0 when `relu` (or, with y null, where the affine pass's value
   * x·scale[c] + shift[c] > 0, scale[c] = weight[c]·invstd[c] rounded to float and the
   * value rounded as channelAffineAct rounds it: the same mask without reading y, for a
   * batch norm without a residual; y or shift is then required),
   *   gradBias[c] += Σ g,   gradWeight[c] += Σ g·x̂,   gradResidual += g,
   *   gradIn += weight[c]·invstd[c]·(g - Σg/m - x̂·Σ(g·x̂)/m)  when `training` (mean and
   *   invstd are the batch's own, so they depend on x), else weight[c]·invstd[c]·g.
   * Each of gradIn, gradWeight, gradBias, gradResidual may be null (not wanted).
   * gradWeight and gradBias accumulate; gradIn and gradResidual accumulate when
   * `accumulateIn` / `accumulateResidual`, else are overwritten (their old contents never
   * read). gradResidual must not share memory with gradOut or gradIn.
   */
  batchNormBackward(
    x: Float32Array, y: Float32Array | null, gradOut: Float32Array, mean: Float32Array, invstd: Float32Array, weight: Float32Array,
    gradIn: Float32Array | null, gradWeight: Float32Array | null, gradBias: Float32Array | null, gradResidual: Float32Array | null,
    n: number, channels: number, size: number, training: boolean, relu: boolean, accumulateIn: boolean, accumulateResidual: boolean,
    shift: Float32Array | null,
  ): void;

  /** out[i] = a[i] + b[i], then max(0, ·) when `relu` (NaN stays NaN). `out` may be `a` or `b`. */
  addAct(a: Float32Array, b: Float32Array, out: Float32Array, n: number, relu: boolean): void;

  /**
   * The gradient of addAct: g = gradOut, masked to y > 0 when `relu` (y the output, then
   * required); gradA += g and gradB += g, either of them null when not wanted, or = g
   * where accumulateA / accumulateB is false (their old contents never read). gradA and
   * gradB may be one array (a + a): gradA is written first.
   */
  addActBackward(
    gradOut: Float32Array, y: Float32Array | null, gradA: Float32Array | null, gradB: Float32Array | null, n: number, relu: boolean,
    accumulateA: boolean, accumulateB: boolean,
  ): void;

  /** out[p] = Σ_k x[p, k] / size for each of `planes` planes of `size` ≥ 1 entries (global average pooling). */
  meanPlanes(x: Float32Array, out: Float32Array, planes: number, size: number): void;

  /** The gradient of meanPlanes: gradIn[p, k] += gradOut[p] / size. */
  meanPlanesBackward(gradOut: Float32Array, gradIn: Float32Array, planes: number, size: number): void;

  // ---------------------------------------------------------------- sequences (LSTM, attention, layer norm)

  /**
   * The recurrence of one LSTM layer over `steps` time steps for `n` rows of `hidden` units
   * (PyTorch's gate order i, f, g, o), time-major, from zero state: gates [steps, n,
   * 4·hidden] holds x_t·W_ihᵀ + b on entry; step t adds h_{t-1}·W_hhᵀ (weightHh [4·hidden,
   * hidden], as nn.LSTM's weight_hh) and overwrites its gates with the activations σ(i),
   * σ(f), tanh(g), σ(o) (what the backward pass reads), then c_t = σ(f)⊙c_{t-1} +
   * σ(i)⊙tanh(g) and h_t = σ(o)⊙tanh(c_t) into c and h [steps, n, hidden].
   */
  lstmSequence(gates: Float32Array, weightHh: Float32Array, c: Float32Array, h: Float32Array, n: number, steps: number, hidden: number): void;

  /**
   * The gradient of lstmSequence back through every step: from its activated gates and c,
   * and gradH [steps, n, hidden] the gradient of h from above, writes the gradient of the
   * gate pre-activations into gradGates [steps, n, 4·hidden]; gradH gets the recurrent
   * gradients added on the way (step t-1's gains gradGates_t·W_hh). W_ih's, W_hh's and the
   * biases' gradients and the input's are products of gradGates that the caller forms.
   */
  lstmSequenceBackward(
    gates: Float32Array, c: Float32Array, weightHh: Float32Array, gradH: Float32Array, gradGates: Float32Array,
    n: number, steps: number, hidden: number,
  ): void;

  /**
   * Softmax of each row of x [rows, cols] into out (may be x). When `causal`, row r sees
   * only columns j ≤ r mod cols (the others are 0): stacked [T, T] attention scores of
   * T queries over T keys, each query attending to itself and earlier keys. A NaN in the
   * seen part of a row makes it all NaN.
   */
  softmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number, causal: boolean): void;

  /** The gradient of softmaxRows from its output y: gradIn = y ⊙ (gradOut - Σ_j gradOut⊙y), per row (overwrites gradIn, which may be gradOut). */
  softmaxRowsBackward(y: Float32Array, gradOut: Float32Array, gradIn: Float32Array, rows: number, cols: number): void;

  /**
   * Causal multi-head self-attention: qkv [n, T, 3·dim] holds each position's queries, keys
   * and values side by side (as nn.MultiheadAttention's in_proj gives them); each of `heads`
   * heads of dh = dim/heads features attends to its own and earlier positions with
   * softmax(Q·Kᵀ/√dh)·V (softmaxRows' causal softmax). Writes the heads' outputs,
   * concatenated, to out [n, T, dim], and for the backward pass each (sample, head) block's
   * [T, dh] queries times 1/√dh (1/√dh in double), keys and values to q, k, v
   * [n·heads, T, dh] and its attention [T, T] to p [n·heads, T, T]. All distinct arrays.
   */
  causalAttention(
    qkv: Float32Array, out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array,
    n: number, T: number, heads: number, dim: number,
  ): void;

  /**
   * The gradient of causalAttention from what it saved (q, k, v, p) and the gradient of its
   * output gradOut [n, T, dim]: gradQkv [n, T, 3·dim] += the gradient of qkv, or = it
   * where `accumulate` is false (gradQkv's old contents never read).
   */
  causalAttentionBackward(
    gradOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, p: Float32Array, gradQkv: Float32Array,
    n: number, T: number, heads: number, dim: number, accumulate: boolean,
  ): void;

  /**
   * Layer normalisation of each row of x [rows, cols] (biased variance, as PyTorch):
   * out = (x - mean)·rstd·gamma + beta, rstd = 1/√(var + eps); writes mean and rstd [rows]
   * for the backward pass.
   */
  layerNorm(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, out: Float32Array, mean: Float32Array, rstd: Float32Array,
    rows: number, cols: number, eps: number,
  ): void;

  /**
   * The gradient of layerNorm: gradX += the input gradient (or = it where accumulateX is
   * false: its old contents never read); gradGamma += Σ_rows gradOut⊙x̂ and gradBeta +=
   * Σ_rows gradOut (either may be null: not wanted).
   */
  layerNormBackward(
    x: Float32Array, gamma: Float32Array, mean: Float32Array, rstd: Float32Array, gradOut: Float32Array,
    gradX: Float32Array, gradGamma: Float32Array | null, gradBeta: Float32Array | null, rows: number, cols: number,
    accumulateX: boolean,
  ): void;

  // ---------------------------------------------------------------- sparse (masked fully connected)
  // A weight W [rows, cols] is computed only at the nonzeros of a mask, compressed once by
  // `sparsePattern`. Its values and gradient are packed (vals, gvals: one entry per nonzero,
  // in the pattern's order, which is the backend's own; entry k is W[flat[k]]), so the
  // optimiser runs the dense `adam`/`sgd` kernels on the packed arrays.
  //
  // Activations are transposed into panels of 64 batch columns: column c (a sample) of
  // feature i is at panelIndex(i, c, features) = ⌊c/64⌋·features·64 + i·64 + c mod 64. ld is
  // the batch n padded to a positive multiple of 16; a buffer holds features·panelColumns(ld)
  // floats. The padding columns n ≤ c < ld of every output are zero (inputs to the
  // backward kernels must keep theirs zero too).

  /**
   * The nonzeros (entries ≠ 0, NaN included) of `mask` [rows, cols], compressed for the
   * kernels below: an object made by this backend only. rows·cols must be below 2^31.
   * `reuse`, a pattern of this backend that nothing will use again (no kernel call, no
   * prepared chain), may give its memory to the new one (a backend may ignore it); any
   * later use of it is refused.
   */
  sparsePattern(mask: Float32Array, rows: number, cols: number, reuse?: SparsePattern | null): SparsePattern;

  /**
   * Where each nonzero of `pattern` was in an earlier packed order `prevFlat` (another
   * pattern's flat, of the same [rows, cols]): from[k] = j where prevFlat[j] =
   * pattern.flat[k], or -1 where there is none or the entry is in `grown` (new connections,
   * whatever they were). Entries of prevFlat and grown are in [0, rows·cols); where prevFlat
   * repeats one, the last counts. from has at least nnz entries. What a mask update moves
   * packed values and optimiser state by.
   */
  sparsePatternFrom(pattern: SparsePattern, prevFlat: Int32Array, grown: Int32Array | null, from: Int32Array): void;

  /**
   * sparsePattern(mask, old.rows, old.cols, old) and the `from` that sparsePatternFrom(pattern,
   * old.flat, grown, from) fills, in one call: what a mask update needs. A backend may make
   * it cheaper where the mask's nonzeros are old's still nonzero in it and `grown`.
   */
  sparsePatternMoved(old: SparsePattern, mask: Float32Array, grown: Int32Array | null): { pattern: SparsePattern; from: Int32Array };

  /**
   * sparsePatternMoved(old, mask, grown) for the mask of old's nonzeros without `dropped`
   * and with `grown`, without the mask: dropped holds distinct nonzeros of old, grown
   * distinct entries that are not among those it keeps (either may be null: none), in any
   * order. A RangeError otherwise. Each of `packed` (old.nnz values in old's packed order,
   * distinct arrays: a layer's weights, its optimiser's state) is moved in place to the new
   * order, packed[k] = before[from[k]], 0 where from[k] is -1; that needs as many grown
   * entries as dropped ones. A mask update that knows what it changed.
   */
  sparsePatternChanged(
    old: SparsePattern, dropped: Int32Array | null, grown: Int32Array | null, ...packed: Float32Array[]
  ): { pattern: SparsePattern; from: Int32Array };

  /**
   * outT[r, c] = act(bias[r] + Σ_k vals[k]·inT[col(k), c]) over the nonzeros k of row r, for
   * c < n; 0 for n ≤ c < ld. act is max(0, ·) when `relu` (NaN stays NaN); bias null means 0.
   * vals [nnz] packed, inT [cols, ld], outT [rows, ld] (in panels).
   */
  sparseForward(
    pattern: SparsePattern, vals: Float32Array, inT: Float32Array, outT: Float32Array,
    bias: Float32Array | null, n: number, ld: number, relu: boolean,
  ): void;

  /** The input gradient: gxT[i, c] = Σ_k vals[k]·gyT[row(k), c] over the nonzeros k of column i, c < ld (overwrites). */
  sparseInputGrad(pattern: SparsePattern, vals: Float32Array, gyT: Float32Array, gxT: Float32Array, ld: number): void;

  /**
   * The weight gradient at the nonzeros, gvals[k] += Σ_{c<ld} gyT[row(k), c]·xT[col(k), c], and
   * the bias gradient, gbias[r] += Σ_{c<ld} gyT[r, c]; either may be null (not wanted). The
   * padding columns of gyT must be zero.
   */
  sparseWeightGrad(
    pattern: SparsePattern, gyT: Float32Array, xT: Float32Array, gvals: Float32Array | null, gbias: Float32Array | null, ld: number,
  ): void;

  // ---------------------------------------------------------------- sparse convolution (masked Conv2d)
  // A stride-1 convolution whose weight W [outChannels, inChannels, kh, kw] is computed only
  // at the nonzeros of its mask: a ConvPattern (compressed rows = output channels over
  // columns c·kh·kw + i·kw + j) and packed values vals [nnz] in row-major order (entry k is
  // W[flat[k]]). Padding padH < kh, padW < kw; x [n, inChannels, height, width], the output
  // [n, outChannels, outH, outW] with outH = height + 2·padH - kh + 1 (outW likewise).

  /**
   * y[b,o,y,x] = act(bias[o] + Σ_k vals[k]·x[b, c, y - padH + i, x - padW + j]) over the
   * nonzeros k = (c, i, j) of row o (0 outside the image), summed in k order; act is
   * max(0, ·) when `relu` (NaN stays NaN); bias null means 0. Overwrites y.
   */
  sparseConvForward(
    pattern: ConvPattern, vals: Float32Array, x: Float32Array, y: Float32Array, bias: Float32Array | null,
    n: number, height: number, width: number, padH: number, padW: number, relu: boolean,
  ): void;

  /** The input gradient: gradIn[b,c,·,·] += Σ_k vals[k]·gradOut[b,o,·,·] shifted back by each nonzero k = (o; c, i, j). */
  sparseConvInputGrad(
    pattern: ConvPattern, vals: Float32Array, gradOut: Float32Array, gradIn: Float32Array,
    n: number, height: number, width: number, padH: number, padW: number,
  ): void;

  /** The weight gradient at the nonzeros: gradVals[k] += Σ_{b,y,x} gradOut[b,o,y,x]·x[b, c, y - padH + i, x - padW + j]. */
  sparseConvWeightGrad(
    pattern: ConvPattern, x: Float32Array, gradOut: Float32Array, gradVals: Float32Array,
    n: number, height: number, width: number, padH: number, padW: number,
  ): void;

  /** x [n, features] → out, transposed into panels (zero padded); out has features·panelColumns(ld) entries. */
  toPanels(x: Float32Array, out: Float32Array, n: number, features: number, ld: number): void;

  /** y [n, features] = the panels transposed back (+= when `accumulate`). */
  fromPanels(panels: Float32Array, y: Float32Array, n: number, features: number, ld: number, accumulate: boolean): void;
}

/**
 * Bytes of a ReLU's mask as bits (Backend.conv2d) for n images of `size` values each: each
 * image's bits start on a byte of their own, so that images can be written in parallel.
 */
export function reluMaskBytes(n: number, size: number): number {
  return n * Math.ceil(size / 8);
}

/** Columns the panels of a padded batch ld take: whole panels of 64. */
export function panelColumns(ld: number): number {
  return Math.ceil(ld / 64) * 64;
}

/** Where column c of feature i of a [features, ld] activation lives in its panels. */
export function panelIndex(i: number, c: number, features: number): number {
  return Math.floor(c / 64) * features * 64 + i * 64 + (c % 64);
}

/**
 * A conv weight's nonzero pattern, the same for every backend (src/tensor/sparse-conv.ts
 * builds it from a mask): rows are output channels, columns c·kh·kw + i·kw + j; nonzeros
 * in row-major order. rowPtr [outChannels + 1] and colIdx [nnz] compress the rows; tPtr
 * [inChannels + 1] and tIdx [nnz] list, input channel by input channel, the nonzeros k
 * (by their packed index) that read it; flat[k] = o·inChannels·kh·kw + colIdx[k].
 */
export interface ConvPattern {
  readonly outChannels: number;
  readonly inChannels: number;
  readonly kh: number;
  readonly kw: number;
  readonly nnz: number;
  readonly rowPtr: Int32Array;
  readonly colIdx: Int32Array;
  readonly tPtr: Int32Array;
  readonly tIdx: Int32Array;
  readonly flat: Int32Array;
}

/** A mask's nonzero pattern as compressed by one backend (`Backend.sparsePattern`). */
export interface SparsePattern {
  readonly rows: number;
  readonly cols: number;
  readonly nnz: number;
  /** flat[k] = r·cols + c of packed nonzero k (the order is the backend's). */
  readonly flat: Int32Array;
}

