/**
 * Batch normalisation, the residual addition and global average pooling on NCHW tensors,
 * forward and backward together (like conv.ts). Each is a few memory-bound kernel passes
 * (backend.ts: channelMoments, channelAffineAct, batchNormBackward, addAct, meanPlanes);
 * outputs and the per-channel statistics come from the active BufferArena, so a training
 * step allocates nothing here.
 */
import { getBackend } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import { Tensor, recordOp, scratchArray, shapeStr } from './tensor.js';

export interface BatchNormOptions {
  /** Batch statistics (and a running-statistics update) when true; the running statistics when false. */
  readonly training: boolean;
  /** Weight of the new batch in the running statistics: running ← (1 - momentum)·running + momentum·batch. */
  readonly momentum: number;
  /** Added to the variance before the square root. */
  readonly eps: number;
  /** Fused activation after the affine map (and the residual). */
  readonly activation?: 'none' | 'relu';
  /**
   * Added to the affine map before the activation, a residual block's join fused in:
   * y = act(γ·x̂ + β + residual), without the intermediate γ·x̂ + β in memory.
   */
  readonly residual?: Tensor;
}

/**
 * 2-D batch normalisation as PyTorch's BatchNorm2d: y = act(γ·(x - μ)/√(σ² + eps) + β) per
 * channel of x [n, c, h, w]. In training mode μ and σ² are the batch's mean and biased
 * variance over (n, h, w), and the running statistics move towards the batch's mean and
 * *unbiased* variance (in place; PyTorch's convention); otherwise μ and σ² are the running
 * statistics. Gradients reach x, γ and β (not the running statistics), and the residual
 * when there is one.
 */
export function batchNorm2d(
  x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, opts: BatchNormOptions,
): Tensor {
  check(x.shape.length === 4, () => `batchNorm2d: input must be rank 4 [batch, channels, height, width], got shape ${shapeStr(x)}`);
  const [n, c, h, w] = x.shape;
  for (const [what, t] of [['weight', weight], ['bias', bias], ['running mean', runningMean], ['running variance', runningVar]] as const) {
    check(t.size === c, () => `batchNorm2d: ${what} has ${t.size} values, the input has ${c} channels (shape ${shapeStr(x)})`);
  }
  const residual = opts.residual;
  check(residual === undefined || (residual.shape.length === 4 && residual.shape.every((d, i) => d === x.shape[i])),
    () => `batchNorm2d: the residual's shape ${shapeStr(residual!)} differs from the input's ${shapeStr(x)}`);
  const size = h * w, m = n * size;
  const be = getBackend();
  const mean = scratchArray(c), invstd = scratchArray(c), scale = scratchArray(c), shift = scratchArray(c);
  if (opts.training) {
    // The unbiased variance divides by m - 1: PyTorch refuses a single value per channel too.
    if (m < 2) throw new LthError(`batchNorm2d: training needs more than one value per channel, got input shape ${shapeStr(x)}`);
    const variance = scale;
    be.channelMoments(x.data, mean, variance, n, c, size);
    const rm = runningMean.data, rv = runningVar.data, mom = opts.momentum, unbias = m / (m - 1);
    for (let j = 0; j < c; j++) {
      rm[j] = (1 - mom) * rm[j] + mom * mean[j];
      rv[j] = (1 - mom) * rv[j] + mom * variance[j] * unbias;
      invstd[j] = 1 / Math.sqrt(variance[j] + opts.eps);
    }
  } else {
    for (let j = 0; j < c; j++) {
      mean[j] = runningMean.data[j];
      invstd[j] = 1 / Math.sqrt(runningVar.data[j] + opts.eps);
    }
  }
  for (let j = 0; j < c; j++) {
    scale[j] = weight.data[j] * invstd[j];
    shift[j] = bias.data[j] - mean[j] * scale[j];
  }
  const relu = opts.activation === 'relu';
  const y = Tensor.empty(x.shape);
  be.channelAffineAct(x.data, scale, shift, residual ? residual.data : null, y.data, n, c, size, relu);
  const training = opts.training;
  return recordOp(y, residual ? [x, weight, bias, residual] : [x, weight, bias], () => {
    // Gradients that nothing has reached yet are overwritten rather than zeroed and added to.
    const gx = x.requiresGrad ? x.gradSink() : null;
    const gr = residual?.requiresGrad && residual !== x ? residual.gradSink() : null;
    // Without a residual the ReLU's mask comes from x and the affine map (y is not read).
    be.batchNormBackward(
      x.data, relu && residual ? y.data : null, y.grad!, mean, invstd, weight.data,
      gx?.grad ?? null, weight.requiresGrad ? weight.ensureGrad() : null, bias.requiresGrad ? bias.ensureGrad() : null,
      gr?.grad ?? null, n, c, size, training, relu, !gx?.overwrite, !gr?.overwrite, relu && !residual ? shift : null,
    );
    // The kernel's two gradient outputs must not alias: a residual that is x itself gets its share apart.
    if (residual === x && x.requiresGrad) be.addActBackward(y.grad!, relu ? y.data : null, x.ensureGrad(), null, y.size, relu, true, false);
  });
}

/** a + b elementwise (same shapes), then ReLU when `activation` is 'relu': a residual block's join. */
export function add(a: Tensor, b: Tensor, activation: 'none' | 'relu' = 'none'): Tensor {
  check(a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]),
    () => `add: shapes ${shapeStr(a)} and ${shapeStr(b)} differ`);
  const be = getBackend();
  const relu = activation === 'relu';
  const y = Tensor.empty(a.shape);
  be.addAct(a.data, b.data, y.data, y.size, relu);
  return recordOp(y, [a, b], () => {
    // Gradients that nothing has reached yet are overwritten rather than zeroed and added to
    // (a's first: when b is a, its sink then adds).
    const ga = a.requiresGrad ? a.gradSink() : null;
    const gb = b.requiresGrad ? b.gradSink() : null;
    be.addActBackward(y.grad!, relu ? y.data : null, ga?.grad ?? null, gb?.grad ?? null, y.size, relu, !ga?.overwrite, !gb?.overwrite);
  });
}

/** Global average pooling: [n, c, h, w] -> [n, c], the mean of each channel's plane. */
export function globalAvgPool2d(x: Tensor): Tensor {
  check(x.shape.length === 4, () => `globalAvgPool2d: input must be rank 4 [batch, channels, height, width], got shape ${shapeStr(x)}`);
  const [n, c, h, w] = x.shape;
  check(h * w >= 1, () => `globalAvgPool2d: the input has no pixels (shape ${shapeStr(x)})`);
  const be = getBackend();
  const y = Tensor.empty([n, c]);
  be.meanPlanes(x.data, y.data, n * c, h * w);
  return recordOp(y, [x], () => be.meanPlanesBackward(y.grad!, x.ensureGrad(), n * c, h * w));
}
