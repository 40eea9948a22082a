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
   * One Adam step (PyTorch semantics, no weight decay), `step` counted from 1:
   * m ← β1·m + (1-β1)·g; v ← β2·v + (1-β2)·g²;
   * p ← p - lr/(1-β1^step) · m / (√v/√(1-β2^step) + eps).
   * Where mask[i] == 0, p, m and v are set to 0 instead (pruned weights stay zero).
   */
  adam(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, mask: Float32Array | null,
    n: number, lr: number, beta1: number, beta2: number, eps: number, step: number,
  ): void;

  /**
   * One SGD step (PyTorch semantics): g' = g + wd·p; buf ← momentum·buf + g'; p ← p - lr·buf.
   * (buf starts at zero, so the first step gives buf = g' as in PyTorch.)
   * Where mask[i] == 0, p and buf are set to 0 instead.
   */
  sgd(
    param: Float32Array, grad: Float32Array, buf: Float32Array, mask: Float32Array | null,
    n: number, lr: number, momentum: number, weightDecay: number,
  ): void;

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
   * NCHW data [n, channels, size] (size = H·W): out[i,c,k] = x[i,c,k] + bias[c], then
   * max(0, ·) when `relu` (NaN stays NaN). `out` may be `x`.
   */
  channelBiasAct(x: Float32Array, bias: Float32Array, out: Float32Array, n: number, channels: number, size: number, relu: boolean): void;

  /** out[c] = Σ_i Σ_k x[i,c,k] (or out[c] += ... when `accumulate`): the per-channel bias gradient of NCHW data. */
  sumChannels(x: Float32Array, out: Float32Array, n: number, channels: number, size: number, accumulate: boolean): void;

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

  // ---------------------------------------------------------------- sparse (masked fully connected)
  // A compressed index of `rows` rows: ptr[rows+1] (ptr[0] = 0, non-decreasing) and idx[ptr[rows]].
  // The values stay in a dense array w: the entry of row r, index k is w[r·rowStride + idx[k]·idxStride]
  // (CSR of W [out, in]: rowStride = in, idxStride = 1; its CSC: rowStride = 1, idxStride = in).
  // Activations are transposed, [features, ld] with the batch contiguous (ld ≥ n).

  /**
   * outT[r, c] = init + Σ_{k ∈ [ptr[r], ptr[r+1])} w[r·rowStride + idx[k]·idxStride] · inT[idx[k], c]
   * for r < rows, c < n (row stride ld for inT and outT), init = outT[r, c] when `accumulate`, else
   * bias[r] (0 when bias is null); then max(0, ·) when `relu` (NaN stays NaN).
   */
  spmm(
    w: Float32Array, ptr: Int32Array, idx: Int32Array, rowStride: number, idxStride: number,
    inT: Float32Array, outT: Float32Array, bias: Float32Array | null,
    rows: number, n: number, ld: number, accumulate: boolean, relu: boolean,
  ): void;

  /**
   * The sampled product: out[r·rowStride + idx[k]·idxStride] += Σ_{c<n} aT[r, c] · bT[idx[k], c] for
   * every nonzero k of rows r < rows (row stride ld): the weight gradient at the nonzeros.
   */
  sddmm(
    aT: Float32Array, ptr: Int32Array, idx: Int32Array, rowStride: number, idxStride: number,
    bT: Float32Array, out: Float32Array, rows: number, n: number, ld: number,
  ): void;

  /**
   * out[c·ldo + r] = x[r·ldx + c] (or += when `accumulate`) for r < rows, c < cols; without
   * `accumulate`, also out[c·ldo + r] = 0 for rows ≤ r < ldo (the padding of a transposed batch).
   */
  transpose(x: Float32Array, out: Float32Array, rows: number, cols: number, ldx: number, ldo: number, accumulate: boolean): void;

  /** `adam` at the entries idx[0..nnz) only (no mask: the others are untouched), then grad[idx[k]] = 0. */
  adamSparse(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, idx: Int32Array, nnz: number,
    lr: number, beta1: number, beta2: number, eps: number, step: number,
  ): void;

  /** `sgd` at the entries idx[0..nnz) only, then grad[idx[k]] = 0. */
  sgdSparse(
    param: Float32Array, grad: Float32Array, buf: Float32Array, idx: Int32Array, nnz: number,
    lr: number, momentum: number, weightDecay: number,
  ): void;
}
