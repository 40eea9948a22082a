/**
 * Sequence layers as modules: PyTorch's parameter names and shapes, what is prunable,
 * describe() -> buildModule giving the same function, Conv1d against a direct loop, and
 * gradients of whole layers (Conv1d through its height-1 conv2d, SelfAttention,
 * TransformerBlock, a 2-layer LSTM).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { gradCheck } from '../tensor/gradcheck.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { buildModule } from './build.js';
import { Linear } from './layers.js';
import { Model } from './model.js';
import type { Module } from './module.js';
import { Conv1d, Embedding, FlattenTime, LSTM, LayerNorm, MaxOverTime, MeanOverTime, PositionEmbedding, SelfAttention, SwapAxes, TransformerBlock } from './seq-layers.js';

function randomTensor(shape: number[], rng: Rng, scale = 1, requiresGrad = true): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

/** Mean of y⊙r for a fixed r: a scalar loss for gradient checks. */
function probeLoss(y: Tensor): Tensor {
  const rng = new Rng(7, 'probe');
  const r = Float32Array.from({ length: y.size }, () => rng.normal());
  const out = new Tensor(Float32Array.of(y.data.reduce((a, v, i) => a + v * r[i], 0)), []);
  out.requiresGrad = true;
  out.parents = [y];
  out.backwardFn = () => {
    const g = y.ensureGrad();
    for (let i = 0; i < y.size; i++) g[i] += r[i];
  };
  return out;
}

const shapes = (m: Module) => m.namedParameters().map(([n, t]) => `${n}:${t.shape.join('x')}`);

test('parameter names and shapes are PyTorch\'s (nn.LSTM, nn.TransformerEncoderLayer, nn.Conv1d, nn.Embedding)', () => {
  assert.deepEqual(shapes(new LSTM(3, 4, 2)), [
    'weight_ih_l0:16x3', 'weight_hh_l0:16x4', 'bias_ih_l0:16', 'bias_hh_l0:16',
    'weight_ih_l1:16x4', 'weight_hh_l1:16x4', 'bias_ih_l1:16', 'bias_hh_l1:16',
  ]);
  assert.deepEqual(shapes(new TransformerBlock(8, 2, 32)), [
    'self_attn.in_proj_weight:24x8', 'self_attn.in_proj_bias:24', 'self_attn.out_proj.weight:8x8', 'self_attn.out_proj.bias:8',
    'linear1.weight:32x8', 'linear1.bias:32', 'linear2.weight:8x32', 'linear2.bias:8',
    'norm1.weight:8', 'norm1.bias:8', 'norm2.weight:8', 'norm2.bias:8',
  ]);
  assert.deepEqual(shapes(new Conv1d(3, 5, 3)), ['weight:5x3x3', 'bias:5']);
  const m = new Model('m', [['embed', new Embedding(10, 8)], ['pos', new PositionEmbedding(6, 8)], ['block', new TransformerBlock(8, 2, 16)],
    ['lstm', new LSTM(8, 4)], ['norm', new LayerNorm(4)], ['flat', new FlattenTime()], ['head', new Linear(4, 10, 'none')]]);
  assert.deepEqual(m.prunableLayers().map((l) => `${l.name}:${l.kind}`), [
    'embed.weight:embedding', 'block.self_attn.in_proj_weight:self_attention', 'block.self_attn.out_proj.weight:linear',
    'block.linear1.weight:linear', 'block.linear2.weight:linear', 'lstm.weight_ih_l0:lstm', 'lstm.weight_hh_l0:lstm', 'head.weight:linear',
  ]);
});

test('every sequence module rebuilds from describe() into the same function', () => {
  const rng = new Rng(1, 'm');
  const cases: Array<[Module, Tensor]> = [
    [new Model('lm', [['embed', new Embedding(7, 8)], ['pos', new PositionEmbedding(5, 8)], ['block', new TransformerBlock(8, 2, 12)],
      ['norm', new LayerNorm(8)], ['lstm', new LSTM(8, 6, 2)], ['flat', new FlattenTime()], ['head', new Linear(6, 7, 'none')]]),
    new Tensor(Float32Array.of(0, 3, 6, 1, 2, 5, 4, 4, 0, 1), [2, 5])],
    [new Model('cnn', [['embed', new Embedding(7, 4)], ['swap', new SwapAxes()], ['conv', new Conv1d(4, 6, 3, 'same', 'relu')],
      ['pool', new MaxOverTime()], ['fc', new Linear(6, 2, 'none')]]), new Tensor(Float32Array.of(0, 3, 6, 1, 2, 5, 4, 4, 0, 1), [2, 5])],
    [new Model('mean', [['conv', new Conv1d(2, 3, 2, 1)], ['swap', new SwapAxes()], ['mean', new MeanOverTime()]]), randomTensor([2, 2, 6], rng, 1, false)],
  ];
  for (const [m, x] of cases) {
    m.initialize(rng);
    const copy = buildModule(JSON.parse(JSON.stringify(m.describe())));
    copy.loadState(m.state());
    const a = noGrad(() => m.forward(x)).data, b = noGrad(() => copy.forward(x)).data;
    assert.deepEqual(b, a, m.describe().type);
  }
});

test('Conv1d: a direct loop (stride 1, zero padding) and gradients', () => {
  const rng = new Rng(2, 'c');
  const conv = new Conv1d(3, 4, 3, 1, 'none');
  conv.initialize(rng);
  for (let i = 0; i < 4; i++) conv.bias.data[i] = 0.1 * i;
  const x = randomTensor([2, 3, 5], rng);
  const y = noGrad(() => conv.forward(x));
  assert.deepEqual(y.shape, [2, 4, 5]);
  for (let b = 0; b < 2; b++) for (let o = 0; o < 4; o++) for (let t = 0; t < 5; t++) {
    let s = conv.bias.data[o];
    for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) {
      const ti = t + k - 1;
      if (ti >= 0 && ti < 5) s += conv.weight.data[(o * 3 + c) * 3 + k] * x.data[(b * 3 + c) * 5 + ti];
    }
    assert.ok(Math.abs(y.data[(b * 4 + o) * 5 + t] - s) < 1e-5);
  }
  assert.ok(gradCheck(() => probeLoss(conv.forward(x)), [x, conv.weight, conv.bias]) < 2e-2);
  assert.throws(() => conv.forward(randomTensor([2, 15], rng)), /Conv1d: input must be rank 3/);
  assert.throws(() => new Conv1d(2, 2, 4, 'same'), /padding 'same' needs an odd kernel/);
});

test('SelfAttention, TransformerBlock and a 2-layer LSTM: gradients of every parameter', () => {
  const rng = new Rng(3, 'g');
  for (const m of [new SelfAttention(6, 3), new TransformerBlock(6, 2, 10), new LSTM(6, 4, 2)]) {
    m.initialize(rng);
    const x = randomTensor([2, 4, 6], rng);
    const params = m.namedParameters().map(([, t]) => t);
    // A small step: the block's ReLU has kinks that a 1e-2 step crosses.
    const err = gradCheck(() => probeLoss(m.forward(x)), [x, ...params], { eps: 1e-3, samples: 12 });
    assert.ok(err < 2e-2, `${m.describe().type}: max relative error ${err}`);
  }
  assert.throws(() => new SelfAttention(6, 4), /dim 6 is not divisible by 4 heads/);
});
