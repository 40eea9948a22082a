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
}
