/**
 * Layers for sequences (text, time series), with PyTorch's parameter names so that tensors
 * interoperate: Embedding (nn.Embedding's weight), PositionEmbedding (a learned [maxLength,
 * dim] table), Conv1d (nn.Conv1d), LSTM (nn.LSTM(batch_first=True): weight_ih_l0, ...),
 * LayerNorm (nn.LayerNorm), SelfAttention (nn.MultiheadAttention's in_proj_weight,
 * in_proj_bias, out_proj) with a causal mask, and TransformerBlock
 * (nn.TransformerEncoderLayer(norm_first=True, dropout=0, batch_first=True): self_attn,
 * linear1, linear2, norm1, norm2), plus the shape glue between them.
 */
import { check } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { Workspace, conv2d } from '../tensor/conv.js';
import { linear } from '../tensor/ops.js';
import { add } from '../tensor/norm.js';
import { addPositions, causalAttention, embedding, layerNorm, lstm, maxOverTime, meanOverTime, reshape, swapLastAxes } from '../tensor/seq.js';
import { Tensor } from '../tensor/tensor.js';
import { glorotNormal } from './init.js';
import { Linear } from './layers.js';
import { Module, type ModuleDesc } from './module.js';

const positive = (layer: string, what: string, v: number) => check(Number.isInteger(v) && v >= 1, `${layer}: ${what} must be a positive integer, got ${v}`);

function normal(data: Float32Array, std: number, rng: Rng): void {
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
}

function uniform(data: Float32Array, bound: number, rng: Rng): void {
  for (let i = 0; i < data.length; i++) data[i] = bound * (2 * rng.uniform() - 1);
}

/** Token ids [n, ...] -> vectors [n, ..., dim]: rows of weight [vocabulary, dim], drawn N(0, 1) as PyTorch's. Prunable. */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(readonly vocabulary: number, readonly dim: number) {
    super();
    positive('Embedding', 'vocabulary', vocabulary);
    positive('Embedding', 'dim', dim);
    this.weight = this.registerParameter('weight', Tensor.zeros([vocabulary, dim], true));
  }

  forward(x: Tensor): Tensor {
    return embedding(x, this.weight);
  }

  describe(): ModuleDesc {
    return { type: 'embedding', vocabulary: this.vocabulary, dim: this.dim };
  }

  /** A lookup: no multiplications, but a weight whose gradient needs the next layer's input gradient. */
  override weightMacs(): Array<[string, number]> {
    return [['weight', 0]];
  }

  override prunable(): readonly string[] {
    return ['weight'];
  }

  override initialize(rng: Rng): void {
    normal(this.weight.data, 1, rng);
  }
}

/** x [n, T, dim] + a learned vector per position (weight [maxLength, dim], N(0, 0.02) as GPT-2's). Not pruned. */
export class PositionEmbedding extends Module {
  readonly weight: Tensor;

  constructor(readonly maxLength: number, readonly dim: number) {
    super();
    positive('PositionEmbedding', 'length', maxLength);
    positive('PositionEmbedding', 'dim', dim);
    this.weight = this.registerParameter('weight', Tensor.zeros([maxLength, dim], true));
  }

  forward(x: Tensor): Tensor {
    return addPositions(x, this.weight);
  }

  describe(): ModuleDesc {
    return { type: 'position_embedding', length: this.maxLength, dim: this.dim };
  }

  override initialize(rng: Rng): void {
    normal(this.weight.data, 0.02, rng);
  }
}

/**
 * 1-D convolution over [n, channels, time], weight [out, in, k] and bias [out] as
 * PyTorch's Conv1d (stride 1), with an optional fused ReLU; computed as the 2-D
 * convolution of a height-1 image. Prunable (its weight).
 */
export class Conv1d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly padding: number;
  private readonly workspace = new Workspace();

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, padding: number | 'same' = 0, readonly activation: 'none' | 'relu' = 'none') {
    super();
    positive('Conv1d', 'in channels', inChannels);
    positive('Conv1d', 'out channels', outChannels);
    positive('Conv1d', 'kernel', kernel);
    if (padding === 'same') check(kernel % 2 === 1, `Conv1d: padding 'same' needs an odd kernel, got ${kernel}`);
    this.padding = padding === 'same' ? (kernel - 1) / 2 : padding;
    check(Number.isInteger(this.padding) && this.padding >= 0, `Conv1d: padding must be an integer >= 0, got ${padding}`);
    this.weight = this.registerParameter('weight', Tensor.zeros([outChannels, inChannels, kernel], true));
    this.bias = this.registerParameter('bias', Tensor.zeros([outChannels], true));
  }

  forward(x: Tensor): Tensor {
    check(x.shape.length === 3, () => `Conv1d: input must be rank 3 [batch, channels, time], got shape [${x.shape.join(', ')}]`);
    const [n, c, t] = x.shape;
    const y = conv2d(reshape(x, [n, c, 1, t]), reshape(this.weight, [this.outChannels, this.inChannels, 1, this.kernel]), this.bias,
      { strideH: 1, strideW: 1, padH: 0, padW: this.padding }, this.activation, this.workspace);
    return reshape(y, [n, this.outChannels, y.shape[3]]);
  }

  override weightMacs(_x: Tensor, y: Tensor): Array<[string, number]> {
    return [['weight', this.weight.size * y.shape[2]]];
  }

  describe(): ModuleDesc {
    return { type: 'conv1d', in: this.inChannels, out: this.outChannels, kernel: this.kernel, padding: this.padding, activation: this.activation };
  }

  override prunable(): readonly string[] {
    return ['weight'];
  }

  /** Glorot normal (fan_in = in·k, fan_out = out·k), as Conv2d; zero biases. */
  override initialize(rng: Rng): void {
    glorotNormal(this.weight.data, this.inChannels * this.kernel, this.outChannels * this.kernel, rng);
    this.bias.data.fill(0);
  }
}

/**
 * A stack of LSTM layers over [n, T, input] -> [n, T, hidden] (every step's last-layer
 * state), from zero state, as nn.LSTM(input, hidden, num_layers, batch_first=True):
 * parameters weight_ih_l{k} [4·hidden, in], weight_hh_l{k} [4·hidden, hidden], bias_ih_l{k},
 * bias_hh_l{k} (gates i, f, g, o), drawn U(-1/√hidden, 1/√hidden) as PyTorch's. The input and
 * recurrent matrices are prunable.
 */
export class LSTM extends Module {
  private readonly weights: Array<{ wih: Tensor; whh: Tensor; bih: Tensor; bhh: Tensor }> = [];

  constructor(readonly inputSize: number, readonly hiddenSize: number, readonly numLayers = 1) {
    super();
    positive('LSTM', 'input size', inputSize);
    positive('LSTM', 'hidden size', hiddenSize);
    positive('LSTM', 'layers', numLayers);
    for (let l = 0; l < numLayers; l++) {
      const inF = l === 0 ? inputSize : hiddenSize, G = 4 * hiddenSize;
      this.weights.push({
        wih: this.registerParameter(`weight_ih_l${l}`, Tensor.zeros([G, inF], true)),
        whh: this.registerParameter(`weight_hh_l${l}`, Tensor.zeros([G, hiddenSize], true)),
        bih: this.registerParameter(`bias_ih_l${l}`, Tensor.zeros([G], true)),
        bhh: this.registerParameter(`bias_hh_l${l}`, Tensor.zeros([G], true)),
      });
    }
  }

  forward(x: Tensor): Tensor {
    for (const w of this.weights) x = lstm(x, w.wih, w.whh, w.bih, w.bhh);
    return x;
  }

  /** Every step multiplies by both matrices of every layer (the first step's h·W_hhᵀ, of a zero h, included). */
  override weightMacs(x: Tensor): Array<[string, number]> {
    const T = x.shape[1];
    return this.weights.flatMap((w, l) => [[`weight_ih_l${l}`, w.wih.size * T], [`weight_hh_l${l}`, w.whh.size * T]] as Array<[string, number]>);
  }

  describe(): ModuleDesc {
    return { type: 'lstm', input: this.inputSize, hidden: this.hiddenSize, layers: this.numLayers };
  }

  override prunable(): readonly string[] {
    return this.weights.flatMap((_, l) => [`weight_ih_l${l}`, `weight_hh_l${l}`]);
  }

  override initialize(rng: Rng): void {
    const bound = 1 / Math.sqrt(this.hiddenSize);
    for (const w of this.weights) for (const t of [w.wih, w.whh, w.bih, w.bhh]) uniform(t.data, bound, rng);
  }
}

/** Normalisation over the last axis with a learned scale (weight, ones) and shift (bias, zeros), eps 1e-5, as nn.LayerNorm. */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly dim: number) {
    super();
    positive('LayerNorm', 'dim', dim);
    this.weight = this.registerParameter('weight', Tensor.zeros([dim], true));
    this.bias = this.registerParameter('bias', Tensor.zeros([dim], true));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias);
  }

  describe(): ModuleDesc {
    return { type: 'layer_norm', dim: this.dim };
  }

  override initialize(): void {
    this.weight.data.fill(1);
    this.bias.data.fill(0);
  }
}

/**
 * Causal multi-head self-attention on [n, T, dim], as nn.MultiheadAttention with a causal
 * mask: in_proj_weight [3·dim, dim] and in_proj_bias (queries, keys, values), then out_proj
 * (a Linear). in_proj_weight and out_proj.weight are prunable.
 */
export class SelfAttention extends Module {
  readonly inProjWeight: Tensor;
  readonly inProjBias: Tensor;
  readonly outProj: Linear;

  constructor(readonly dim: number, readonly heads: number) {
    super();
    positive('SelfAttention', 'dim', dim);
    positive('SelfAttention', 'heads', heads);
    check(dim % heads === 0, `SelfAttention: dim ${dim} is not divisible by ${heads} heads`);
    this.inProjWeight = this.registerParameter('in_proj_weight', Tensor.zeros([3 * dim, dim], true));
    this.inProjBias = this.registerParameter('in_proj_bias', Tensor.zeros([3 * dim], true));
    this.outProj = this.registerChild('out_proj', new Linear(dim, dim, 'none'));
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, (t) => linear(t, this.inProjWeight, this.inProjBias), (t) => this.outProj.forward(t));
  }

  /**
   * The attention with its projections computed by the given functions on [n·T, features]
   * rows (a program's sparse layers): inProj in place of the in_proj product, outProj of out_proj.
   */
  forwardWith(x: Tensor, inProj: (rows: Tensor) => Tensor, outProj: (rows: Tensor) => Tensor): Tensor {
    check(x.shape.length === 3 && x.shape[2] === this.dim, () => `SelfAttention: input must be [batch, time, ${this.dim}], got shape [${x.shape.join(', ')}]`);
    const [n, T] = x.shape;
    const qkv = inProj(reshape(x, [n * T, this.dim]));
    const heads = causalAttention(reshape(qkv, [n, T, 3 * this.dim]), this.heads);
    return reshape(outProj(reshape(heads, [n * T, this.dim])), [n, T, this.dim]);
  }

  /** The input projection's MACs (out_proj is a Linear, counted as one); the scores and their weighting of the values (no weights) are left out, as activations are. */
  override weightMacs(x: Tensor): Array<[string, number]> {
    return [['in_proj_weight', this.inProjWeight.size * x.shape[1]]];
  }

  describe(): ModuleDesc {
    return { type: 'self_attention', dim: this.dim, heads: this.heads };
  }

  override prunable(): readonly string[] {
    return ['in_proj_weight'];
  }

  /** Xavier uniform in_proj (as PyTorch's), zero biases; out_proj as a Linear (Glorot normal). */
  override initialize(rng: Rng): void {
    uniform(this.inProjWeight.data, Math.sqrt(6 / (this.dim + 3 * this.dim)), rng);
    this.inProjBias.data.fill(0);
    this.outProj.initialize(rng);
  }
}

/** A Transformer block's parts as functions (TransformerBlock.forwardWith): the attention of [n, T, dim], linear2 ∘ linear1 of [n·T, dim] rows. */
export interface TransformerBlockLayers {
  readonly attention: (x: Tensor) => Tensor;
  readonly feedForward: (rows: Tensor) => Tensor;
}

/**
 * A pre-LN Transformer block on [n, T, dim]: x + attn(norm1(x)), then + linear2(relu(linear1(norm2(·)))),
 * named as nn.TransformerEncoderLayer(norm_first=True) (dropout 0, causal mask).
 */
export class TransformerBlock extends Module {
  readonly selfAttn: SelfAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;

  constructor(readonly dim: number, readonly heads: number, readonly ff: number) {
    super();
    this.selfAttn = this.registerChild('self_attn', new SelfAttention(dim, heads));
    this.linear1 = this.registerChild('linear1', new Linear(dim, ff, 'relu'));
    this.linear2 = this.registerChild('linear2', new Linear(ff, dim, 'none'));
    this.norm1 = this.registerChild('norm1', new LayerNorm(dim));
    this.norm2 = this.registerChild('norm2', new LayerNorm(dim));
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, { attention: (t) => this.selfAttn.forward(t), feedForward: (t) => this.linear2.forward(this.linear1.forward(t)) });
  }

  /**
   * The block with its attention and feed-forward pair computed by the given functions (a
   * program's sparse layers, through SelfAttention.forwardWith for the attention).
   */
  forwardWith(x: Tensor, layers: TransformerBlockLayers): Tensor {
    check(x.shape.length === 3, () => `TransformerBlock: input must be [batch, time, dim], got shape [${x.shape.join(', ')}]`);
    const [n, T, D] = x.shape;
    const h = add(x, layers.attention(this.norm1.forward(x)));
    const flat = reshape(h, [n * T, D]);
    const ff = layers.feedForward(this.norm2.forward(flat));
    return reshape(add(flat, ff), [n, T, D]);
  }

  describe(): ModuleDesc {
    return { type: 'transformer_block', dim: this.dim, heads: this.heads, ff: this.ff };
  }
}

/** [n, a, b] -> [n, b, a]: token vectors [n, T, dim] as channels over time [n, dim, T] for Conv1d (or back). */
export class SwapAxes extends Module {
  forward(x: Tensor): Tensor {
    return swapLastAxes(x);
  }

  describe(): ModuleDesc {
    return { type: 'swap_axes' };
  }
}

/** [n, channels, T] -> [n, channels]: max-pool over all of time. */
export class MaxOverTime extends Module {
  forward(x: Tensor): Tensor {
    return maxOverTime(x);
  }

  describe(): ModuleDesc {
    return { type: 'max_over_time' };
  }
}

/** [n, T, dim] -> [n, dim]: the mean over time. */
export class MeanOverTime extends Module {
  forward(x: Tensor): Tensor {
    return meanOverTime(x);
  }

  describe(): ModuleDesc {
    return { type: 'mean_over_time' };
  }
}

/** [n, T, dim] -> [n·T, dim] (no copy): every position as a row, for a per-position output layer (a language model's logits). */
export class FlattenTime extends Module {
  forward(x: Tensor): Tensor {
    check(x.shape.length === 3, () => `FlattenTime: input must be [batch, time, dim], got shape [${x.shape.join(', ')}]`);
    return reshape(x, [x.shape[0] * x.shape[1], x.shape[2]]);
  }

  describe(): ModuleDesc {
    return { type: 'flatten_time' };
  }
}
