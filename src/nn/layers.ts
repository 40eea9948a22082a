import type { Rng } from '../core/rng.js';
import { linear } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { glorotNormal } from './init.js';

/** A layer maps a batch to a batch and owns named parameters ('weight', 'bias'). */
export interface Layer {
  forward(x: Tensor, training: boolean): Tensor;
  parameters(): Array<[string, Tensor]>;
  /** Re-draws the parameters from the layer's initial distribution. */
  initialize(rng: Rng): void;
  /** Whether `weight` takes part in pruning (a bias never does). */
  readonly prunable: boolean;
}

/** Fully connected y = x·Wᵀ + b (W: [out, in], PyTorch layout), with an optional fused ReLU. */
export class Linear implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly prunable = true;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly activation: 'none' | 'relu') {
    this.weight = Tensor.zeros([outFeatures, inFeatures], true);
    this.bias = Tensor.zeros([outFeatures], true);
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias, this.activation);
  }

  parameters(): Array<[string, Tensor]> {
    return [['weight', this.weight], ['bias', this.bias]];
  }

  /** Glorot normal weights; zero biases. */
  initialize(rng: Rng): void {
    glorotNormal(this.weight.data, this.inFeatures, this.outFeatures, rng);
    this.bias.data.fill(0);
  }
}
