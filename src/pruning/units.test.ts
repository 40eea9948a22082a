/**
 * Structured strategies: neuron_l1 and channel_l1 against masks computed by hand on tiny
 * layers (rows by L1 norm, the next layer's columns, a channel's block of flattened
 * columns, the inversion, the last unit kept), their errors, the neuron ladder of LeNet over
 * three rounds with masks that stay structured, and the compacted networks they give
 * computing what the masked dense ones compute (LeNet with neuron_l1, Conv-2 with
 * channel_l1 on random 3x32x32 inputs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { getModel } from '../models/registry.js';
import { compaction, keptUnits, unitChain } from '../nn/compact.js';
import { Conv2d, Flatten, Linear, MaxPool2d } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { onesMask, type Mask } from './mask.js';
import { channelL1 } from './strategies/channel-l1.js';
import { neuronL1 } from './strategies/neuron-l1.js';
import type { PruningContext, Strategy } from './strategy.js';
import { testContext } from './testing.js';

/** A context over `build()`'s network with the given trained weights, mask and rates. */
function context(build: () => Model, trained: Map<string, Float32Array>, mask: Mask, rates: Record<string, number>, invert = false): PruningContext {
  return {
    ...testContext({ rates: new Map(Object.entries(rates)), trained, mask }),
    layers: build().prunableLayers(), model: build, invert,
  };
}

/** A 3-4-3-2 MLP whose weights are given row by row. */
function tinyMlp(): { build: () => Model; trained: Map<string, Float32Array> } {
  const build = () => new Model('tiny', [['fc1', new Linear(3, 4, 'relu')], ['fc2', new Linear(4, 3, 'relu')], ['fc3', new Linear(3, 2, 'none')]]);
  const trained = build().state();
  trained.set('fc1.weight', Float32Array.from([1, -1, 0, /* L1 0.4 */ 0.1, 0.2, -0.1, 3, 0, 0, /* L1 1.5 */ -0.5, 0.5, 0.5]));
  trained.set('fc2.weight', Float32Array.from([1, 1, 1, 1, /* L1 0.2 */ 0, 0, 0, 0.2, 2, 0, 0, 0]));
  trained.set('fc3.weight', Float32Array.from([0, 0, 0, 0, 0, 0]));
  return { build, trained };
}

const rows = (m: Mask) => Object.fromEntries([...m].map(([n, v]) => [n, [...v]]));

test('neuron_l1 by hand: the rows of smallest L1 norm and their outgoing columns; the output layer keeps its neurons', () => {
  const { build, trained } = tinyMlp();
  const ones = onesMask(trained, build().prunableNames());
  const rates = { 'fc1.weight': 0.5, 'fc2.weight': 0.34, 'fc3.weight': 0.5 };
  const once = neuronL1.prune(context(build, trained, ones, rates));
  // fc1: 2 of 4 neurons (L1 0.4 and 1.5: rows 1 and 3); fc2: 1 of 3 (row 1, L1 0.2), and fc1's two columns.
  assert.deepEqual(rows(once), {
    'fc1.weight': [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0],
    'fc2.weight': [1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0],
    'fc3.weight': [1, 0, 1, 1, 0, 1],
  });
  // Again at 0.9: 2 of the 2 fc1 neurons left, but one always stays (the larger, row 2).
  const twice = neuronL1.prune(context(build, trained, once, { ...rates, 'fc1.weight': 0.9 }));
  assert.deepEqual(rows(twice)['fc1.weight'], [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
  // Inverted: the largest go (fc1 rows 2 and 0, fc2 row 0 of L1 4).
  const inverted = neuronL1.prune(context(build, trained, ones, rates, true));
  assert.deepEqual(rows(inverted), {
    'fc1.weight': [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1],
    'fc2.weight': [0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1],
    'fc3.weight': [0, 1, 1, 0, 1, 1],
  });
});

test("channel_l1 by hand: the filter of smallest L1 norm and its block of H·W flattened columns of the next layer", () => {
  // conv 1->3 (1x1) on 1x4x4, pool 2 -> 3x2x2, flatten (12), fc 12 -> 2: channel c owns columns 4c..4c+3.
  const build = () => new Model('tiny_conv', [['conv1', new Conv2d(1, 3, 1)], ['pool', new MaxPool2d(2)], ['flatten', new Flatten()], ['fc1', new Linear(12, 2, 'none')]]);
  const trained = build().state();
  trained.set('conv1.weight', Float32Array.from([0.5, -0.1, 2]));
  const mask = channelL1.prune(context(build, trained, onesMask(trained, ['conv1.weight', 'fc1.weight']), { 'conv1.weight': 0.34, 'fc1.weight': 0.5 }));
  assert.deepEqual(rows(mask), {
    'conv1.weight': [1, 0, 1],
    'fc1.weight': [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1],
  });
});

test('structured strategies say when the model has nothing for them, or is not a chain', () => {
  const lenet = getModel('lenet_300_100');
  const trained = lenet.build().state();
  const ctx = context(() => lenet.build(), trained, onesMask(trained, lenet.build().prunableNames()), { 'fc1.weight': 0.2, 'fc2.weight': 0.2, 'fc3.weight': 0.1 });
  assert.throws(() => channelL1.prune(ctx), { name: 'LthError', message: 'channel_l1: lenet_300_100 has no hidden convolution to remove channels from' });
  const single = () => new Model('single', [['fc1', new Linear(4, 2, 'none')]]);
  const w = single().state();
  assert.throws(() => neuronL1.prune(context(single, w, onesMask(w, ['fc1.weight']), { 'fc1.weight': 0.2 })), /neuron_l1: single has no hidden fully connected layer/);
  assert.throws(() => neuronL1.prune({ ...ctx, trained: null }), /neuron_l1: needs trained weights/);
});

/** Trained weights drawn at random for `model`'s parameters. */
function randomTrained(model: Model, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed, 'trained');
  return new Map([...model.state()].map(([n, w]) => [n, w.map(() => rng.normal())]));
}

/** Prunes `rounds` times at the model's rates, each round checking the mask stays structured. */
function rounds(strategy: Strategy, spec: ReturnType<typeof getModel>, build: () => Model, trained: Map<string, Float32Array>, n: number): { masks: Mask[]; kept: number[][] } {
  const model = build(), chain = unitChain(model);
  let mask = onesMask(trained, model.prunableNames());
  const masks: Mask[] = [], kept: number[][] = [];
  for (let r = 0; r < n; r++) {
    mask = strategy.prune({ ...context(build, trained, mask, Object.fromEntries(spec.pruningRates(model))), rng: new Rng(0, 'prune', r + 1) });
    const k = keptUnits(chain, mask);
    assert.ok(k, `${strategy.name} round ${r + 1}: structured`);
    masks.push(mask);
    kept.push(k.map((v) => v.reduce((a, b) => a + b, 0)));
  }
  return { masks, kept };
}

test("neuron_l1 on LeNet: 20% of each hidden layer's remaining neurons a round, masks structured, weights = kept × kept", () => {
  const spec = getModel('lenet_300_100');
  const build = () => spec.build();
  const { masks, kept } = rounds(neuronL1, spec, build, randomTrained(build(), 1), 3);
  assert.deepEqual(kept, [[240, 80, 10], [192, 64, 10], [154, 51, 10]]);
  const count = (m: Float32Array) => m.reduce((a, v) => a + v, 0);
  assert.deepEqual([...masks[2].values()].map(count), [154 * 784, 51 * 154, 10 * 51]);
});

/** The masked dense network and its compaction give the same outputs on `x`. */
function compactAgrees(model: Model, weights: Map<string, Float32Array>, mask: Mask, x: Tensor): void {
  model.loadState(weights);
  for (const [n, m] of mask) model.parameter(n).data.forEach((_, i, a) => { a[i] *= m[i]; });
  const c = compaction(model, mask);
  assert.ok(c, 'the mask compacts');
  c.model.loadState(c.compact(model.state()));
  const [full, small] = noGrad(() => [model.eval().forward(x).data, c.model.eval().forward(x).data]);
  const scale = full.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  assert.ok(scale > 0);
  full.forEach((v, i) => assert.ok(Math.abs(v - small[i]) <= 1e-5 * scale, `output ${i}: ${v} vs ${small[i]}`));
}

test('LeNet pruned by neuron_l1 compacts into a network with the same outputs', () => {
  const spec = getModel('lenet_300_100');
  const build = () => spec.build();
  const model = build();
  model.initialize(new Rng(5, 'init'));
  const weights = model.state();
  const { masks } = rounds(neuronL1, spec, build, weights, 2);
  const rng = new Rng(5, 'x');
  compactAgrees(model, weights, masks[1], new Tensor(new Float32Array(8 * 784).map(() => rng.normal()), [8, 784]));
});

test('Conv-2 pruned by channel_l1 compacts into a network with the same outputs on random 3x32x32 inputs', () => {
  const spec = getModel('conv2');
  const build = () => spec.build();
  const model = build();
  model.initialize(new Rng(6, 'init'));
  const weights = model.state();
  const { masks, kept } = rounds(channelL1, spec, build, weights, 2);
  assert.deepEqual(kept, [[58, 58, 256, 256, 10], [52, 52, 256, 256, 10]], 'conv: 10% of the remaining channels a round (round(6.4), round(5.8)); fc neurons stay');
  const rng = new Rng(6, 'x');
  compactAgrees(model, weights, masks[1], new Tensor(new Float32Array(2 * 3 * 32 * 32).map(() => rng.normal()), [2, 3, 32, 32]));
});
