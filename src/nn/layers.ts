import { check } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { Workspace, conv2d, conv2dMaxPool, dropout, dropoutMask, flatten, maxPool2d, poolsInOne, type Conv2dGeometry } from '../tensor/conv.js';
import { linear } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { glorotNormal, kaimingNormal } from './init.js';
import { Module, type ModuleDesc } from './module.js';

/** How a layer draws its initial weights: Glorot (Xavier) normal, or He (Kaiming) normal (the ResNet/VGG convention). */
export type WeightInit = 'glorot' | 'kaiming';

/**
 * Fully connected y = x·Wᵀ + b (W: [out, in], PyTorch layout), with an optional fused ReLU.
 * Its weight is prunable. A program may compute it sparsely (src/program/graph.ts); the
 * layer itself is always the dense definition.
 */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly activation: 'none' | 'relu', readonly init: WeightInit = 'glorot') {
    super();
    for (const [what, v] of [['in features', inFeatures], ['out features', outFeatures]] as const) {
      check(Number.isInteger(v) && v >= 1, `Linear: ${what} must be a positive integer, got ${v}`);
    }
    this.weight = this.registerParameter('weight', Tensor.zeros([outFeatures, inFeatures], true));
    this.bias = this.registerParameter('bias', Tensor.zeros([outFeatures], true));
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias, this.activation);
  }

  describe(): ModuleDesc {
    return { type: 'linear', in: this.inFeatures, out: this.outFeatures, activation: this.activation, ...(this.init === 'glorot' ? {} : { init: this.init }) };
  }

  override prunable(): readonly string[] {
    return ['weight'];
  }

  /** Glorot normal (or Kaiming normal) weights; zero biases. */
  override initialize(rng: Rng): void {
    if (this.init === 'kaiming') kaimingNormal(this.weight.data, this.inFeatures, rng);
    else glorotNormal(this.weight.data, this.inFeatures, this.outFeatures, rng);
    this.bias.data.fill(0);
  }
}

export interface Conv2dOptions {
  /** Stride, one number for both axes or [h, w]; default 1. */
  readonly stride?: number | readonly [number, number];
  /** Zero padding, [h, w], one number, or 'same' ((k-1)/2 for an odd kernel at stride 1); default 0. */
  readonly padding?: number | readonly [number, number] | 'same';
  /** Fused activation after the bias; default 'none'. */
  readonly activation?: 'none' | 'relu';
  /** A bias parameter; default true. Off before batch normalisation, whose shift makes it redundant (PyTorch's bias=False). */
  readonly bias?: boolean;
  /** Initial weights; default 'glorot'. */
  readonly init?: WeightInit;
}

const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/**
 * 2-D convolution over NCHW batches, weight [out, in, kh, kw] and bias [out] (or none) as
 * PyTorch's Conv2d, with an optional fused ReLU. Prunable (its weight). While gradients are
 * recorded, its output reuses the buffers of the previous training step once that
 * step's backward has run (see Workspace): a returned tensor is meant for the next
 * layer, not to be kept across steps.
 */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernel: readonly [number, number];
  readonly geometry: Conv2dGeometry;
  readonly activation: 'none' | 'relu';
  readonly init: WeightInit;
  /** Output/gradient buffers reused across training steps. */
  private readonly workspace = new Workspace();
  /** Those of its output pooled (fusedWith). */
  private readonly pooledWorkspace = new Workspace();

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | readonly [number, number], options: Conv2dOptions = {}) {
    super();
    const [kh, kw] = pair(kernelSize);
    const [strideH, strideW] = pair(options.stride ?? 1);
    let padH: number, padW: number;
    if (options.padding === 'same') {
      check(strideH === 1 && strideW === 1 && kh % 2 === 1 && kw % 2 === 1,
        `Conv2d: padding 'same' needs an odd kernel and stride 1, got kernel ${kh}x${kw}, stride ${strideH}x${strideW}`);
      [padH, padW] = [(kh - 1) / 2, (kw - 1) / 2];
    } else {
      [padH, padW] = pair(options.padding ?? 0);
    }
    for (const [what, v, min] of [['in channels', inChannels, 1], ['out channels', outChannels, 1], ['kernel height', kh, 1],
      ['kernel width', kw, 1], ['stride', strideH, 1], ['stride', strideW, 1], ['padding', padH, 0], ['padding', padW, 0]] as const) {
      check(Number.isInteger(v) && v >= min, `Conv2d: ${what} must be an integer >= ${min}, got ${v}`);
    }
    this.kernel = [kh, kw];
    this.geometry = { strideH, strideW, padH, padW };
    this.activation = options.activation ?? 'none';
    this.init = options.init ?? 'glorot';
    this.weight = this.registerParameter('weight', Tensor.zeros([outChannels, inChannels, kh, kw], true));
    this.bias = options.bias === false ? null : this.registerParameter('bias', Tensor.zeros([outChannels], true));
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.geometry, this.activation, this.workspace);
  }

  /**
   * Followed by 2×2 max pooling with stride 2: conv2dMaxPool on inputs where it pools in one
   * op (poolsInOne), the two forwards otherwise.
   */
  override fusedWith(next: Module): ((x: Tensor) => Tensor) | undefined {
    if (!(next instanceof MaxPool2d) || next.k !== 2 || next.stride !== 2) return undefined;
    const [kh, kw] = this.kernel;
    return (x) => (x.shape.length === 4 && poolsInOne(this.inChannels, this.outChannels, kh, kw, this.geometry, x.shape[2], x.shape[3])
      ? conv2dMaxPool(x, this.weight, this.bias, this.geometry, this.activation, this.pooledWorkspace)
      : next.forward(this.forward(x)));
  }

  describe(): ModuleDesc {
    const { strideH, strideW, padH, padW } = this.geometry;
    return {
      type: 'conv2d', in: this.inChannels, out: this.outChannels, kernel: this.kernel, stride: [strideH, strideW], padding: [padH, padW], activation: this.activation,
      ...(this.bias ? {} : { bias: false }), ...(this.init === 'glorot' ? {} : { init: this.init }),
    };
  }

  override prunable(): readonly string[] {
    return ['weight'];
  }

  /** Glorot normal as PyTorch's xavier_normal_ (fan_in = in·kh·kw, fan_out = out·kh·kw), or Kaiming normal; zero biases. */
  override initialize(rng: Rng): void {
    const rf = this.kernel[0] * this.kernel[1];
    if (this.init === 'kaiming') kaimingNormal(this.weight.data, this.inChannels * rf, rng);
    else glorotNormal(this.weight.data, this.inChannels * rf, this.outChannels * rf, rng);
    this.bias?.data.fill(0);
  }
}

/** k×k max pooling (stride k by default) over NCHW batches. No parameters. */
export class MaxPool2d extends Module {
  /** Output/gradient buffers reused across training steps. */
  private readonly workspace = new Workspace();

  constructor(readonly k = 2, readonly stride = k) {
    super();
    check(Number.isInteger(k) && k >= 1 && Number.isInteger(stride) && stride >= 1,
      `MaxPool2d: window and stride must be positive integers, got ${k} and ${stride}`);
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.k, this.stride, this.workspace);
  }

  describe(): ModuleDesc {
    return { type: 'max_pool2d', k: this.k, stride: this.stride };
  }
}

/** [n, c, h, w] -> [n, c·h·w] in NCHW order (PyTorch's nn.Flatten), without copying. */
export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return flatten(x);
  }

  describe(): ModuleDesc {
    return { type: 'flatten' };
  }
}

/**
 * Inverted dropout: while training, each activation is zeroed with probability p and the
 * rest scaled by 1/(1-p); the identity (no copy) when not training. The masks come from
 * the layer's own random stream ('dropout', index) — never Math.random — which starts
 * from seed 0 when the layer is built and can be re-seeded with `seed(s)`; the stream
 * advances only on passes in training mode, so a run repeated from a freshly built model draws
 * the same masks. initialize() does not touch it, so adding dropout leaves the other
 * layers' θ0 unchanged.
 */
export class Dropout extends Module {
  private rng: Rng;

  constructor(readonly p: number, readonly index = 0) {
    super();
    check(p >= 0 && p < 1, `Dropout: probability must be in [0, 1), got ${p}`);
    this.rng = new Rng(0, 'dropout', index);
  }

  /** Restarts the mask stream from (seed, 'dropout', index). */
  override seed(seed: number): void {
    this.rng = new Rng(seed, 'dropout', this.index);
  }

  override ownRandomState(): RngState {
    return this.rng.state();
  }

  override loadOwnRandomState(state: RngState): void {
    this.rng.restore(state);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, dropoutMask(new Float32Array(x.size), this.p, this.rng));
  }

  describe(): ModuleDesc {
    return { type: 'dropout', p: this.p, index: this.index };
  }
}
