import { check } from '../core/errors.js';
import { batchNorm2d, globalAvgPool2d } from '../tensor/norm.js';
import { Tensor } from '../tensor/tensor.js';
import { Module, type ModuleDesc } from './module.js';

/**
 * 2-D batch normalisation, exactly PyTorch's BatchNorm2d (affine, tracking running
 * statistics): parameters `weight` (γ) and `bias` (β), buffers `running_mean`,
 * `running_var` and `num_batches_tracked`, under those names, so state dicts interoperate.
 * In training mode it normalises with the batch's statistics and updates the running ones
 * (momentum 0.1: running ← 0.9·running + 0.1·batch, the variance unbiased); in evaluation
 * mode it normalises with the running statistics. An optional ReLU is fused after it.
 * Nothing here is prunable: pruning strategies never see γ or β.
 */
export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  /** Training passes so far (PyTorch keeps an int64; a float32 counts exactly to 2^24). */
  readonly numBatchesTracked: Tensor;

  constructor(readonly channels: number, readonly activation: 'none' | 'relu' = 'none', readonly momentum = 0.1, readonly eps = 1e-5) {
    super();
    check(Number.isInteger(channels) && channels >= 1, `BatchNorm2d: channels must be a positive integer, got ${channels}`);
    check(momentum >= 0 && momentum <= 1, `BatchNorm2d: momentum must be in [0, 1], got ${momentum}`);
    check(eps > 0, `BatchNorm2d: eps must be positive, got ${eps}`);
    this.weight = this.registerParameter('weight', Tensor.zeros([channels], true));
    this.bias = this.registerParameter('bias', Tensor.zeros([channels], true));
    this.runningMean = this.registerBuffer('running_mean', Tensor.zeros([channels]));
    this.runningVar = this.registerBuffer('running_var', Tensor.zeros([channels]));
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', Tensor.zeros([]));
    this.reset();
  }

  forward(x: Tensor): Tensor {
    return this.normalise(x, this.activation);
  }

  /**
   * act(bn(x) + residual) in one op (a residual block's join, the sum never in memory), for
   * a BatchNorm2d without an activation of its own: `activation` is the join's.
   */
  forwardResidual(x: Tensor, residual: Tensor, activation: 'none' | 'relu'): Tensor {
    check(this.activation === 'none', () => `BatchNorm2d.forwardResidual: the layer has its own activation (${this.activation}); the join's comes after the residual`);
    return this.normalise(x, activation, residual);
  }

  private normalise(x: Tensor, activation: 'none' | 'relu', residual?: Tensor): Tensor {
    if (this.training) this.numBatchesTracked.data[0]++;
    return batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      training: this.training, momentum: this.momentum, eps: this.eps, activation, residual,
    });
  }

  describe(): ModuleDesc {
    return {
      type: 'batch_norm2d', channels: this.channels, activation: this.activation,
      ...(this.momentum === 0.1 ? {} : { momentum: this.momentum }), ...(this.eps === 1e-5 ? {} : { eps: this.eps }),
    };
  }

  /** PyTorch's initial state: γ = 1, β = 0, running mean 0, running variance 1, no batches tracked. Draws nothing. */
  override initialize(): void {
    this.reset();
  }

  private reset(): void {
    this.weight.data.fill(1);
    this.bias.data.fill(0);
    this.runningMean.data.fill(0);
    this.runningVar.data.fill(1);
    this.numBatchesTracked.data[0] = 0;
  }
}

/** Global average pooling, [n, c, h, w] -> [n, c] (PyTorch's adaptive_avg_pool2d to 1×1, then flatten). No parameters. */
export class GlobalAvgPool2d extends Module {
  forward(x: Tensor): Tensor {
    return globalAvgPool2d(x);
  }

  describe(): ModuleDesc {
    return { type: 'global_avg_pool2d' };
  }
}
