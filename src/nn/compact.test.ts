/**
 * Compaction: the chain of units of LeNet and Conv-2 (blocks of inputs per unit, NCHW
 * flatten order), which masks are structured (by hand on tiny layers), the compact model's
 * shapes and values gathered by hand, expand ∘ compact, and the compact network's outputs
 * against the masked dense network's on random weights and random unit choices.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { getModel } from '../models/registry.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { compaction, keptUnits, unitChain, zeroInputsFrom, zeroUnit, type UnitLayer } from './compact.js';
import { Conv2d, Flatten, Linear, MaxPool2d } from './layers.js';
import { Model } from './model.js';
import { Sequential } from './module.js';
import { BatchNorm2d } from './norm.js';

/** A 3-4-3-2 MLP. */
function tiny(): Model {
  return new Model('tiny', [['fc1', new Linear(3, 4, 'relu')], ['fc2', new Linear(4, 3, 'relu')], ['fc3', new Linear(3, 2, 'none')]]);
}

const ones = (model: Model) => new Map(model.prunableLayers().map((l) => [l.name, new Float32Array(l.shape.reduce((a, b) => a * b, 1)).fill(1)]));

test('unitChain: LeNet and Conv-2, with each layer\'s units, inputs and block (H·W per channel after flatten)', () => {
  const brief = (c: UnitLayer[]) => c.map((l) => [l.weight, l.kind, l.units, l.inUnits, l.block, l.output]);
  assert.deepEqual(brief(unitChain(getModel('lenet_300_100').build())), [
    ['fc1.weight', 'linear', 300, 784, 1, false], ['fc2.weight', 'linear', 100, 300, 1, false], ['fc3.weight', 'linear', 10, 100, 1, true],
  ]);
  assert.deepEqual(brief(unitChain(getModel('conv2').build())), [
    ['conv1.weight', 'conv2d', 64, 3, 9, false], ['conv2.weight', 'conv2d', 64, 64, 9, false],
    ['fc1.weight', 'linear', 256, 64, 256, false], ['fc2.weight', 'linear', 256, 256, 1, false], ['fc3.weight', 'linear', 10, 256, 1, true],
  ]);
  assert.equal(unitChain(getModel('conv2_dropout').build()).length, 5, 'dropout passes units through');
  const nested = new Model('nested', [['block', new Sequential([['fc', new Linear(3, 2, 'none')]])]]);
  assert.deepEqual(brief(unitChain(nested)), [['block.fc.weight', 'linear', 2, 3, 1, true]], 'Sequentials nest');
  assert.throws(() => unitChain(getModel('cifar_resnet_20').build()), {
    name: 'LthError', message: /cifar_resnet_20: structured pruning needs a chain of Linear\/Conv2d layers: blocks.0 \(basic_block\) is neither a Linear or Conv2d layer nor pooling, flatten, dropout or batch norm/,
  });
  const bnFirst = new Model('bn_first', [['bn', new BatchNorm2d(3)], ['conv', new Conv2d(3, 2, 1)]]);
  assert.throws(() => unitChain(bnFirst), /bn \(batch_norm2d\) does not follow a convolution directly/);
});

test('zeroUnit and zeroInputsFrom: a channel\'s block of flattened columns, NCHW', () => {
  // conv 1->2 channels on 1x4x4, pool 2 -> 2x2x2, flatten (8), fc 8 -> 3: channel 1 owns columns 4..7.
  const model = new Model('c', [['conv', new Conv2d(1, 2, 1)], ['pool', new MaxPool2d(2)], ['flatten', new Flatten()], ['fc', new Linear(8, 3, 'none')]]);
  const [conv, fc] = unitChain(model);
  assert.deepEqual([fc.inUnits, fc.block], [2, 4]);
  const m = new Float32Array(24).fill(1);
  zeroInputsFrom(m, fc, 1);
  assert.deepEqual([...m], [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
  const w = new Float32Array(2).fill(1);
  zeroUnit(w, conv, 0);
  assert.deepEqual([...w], [0, 1]);
  // The same columns as a flattened NCHW tensor: element (c=1, h, w) sits at 4 + 2h + w.
  const x = new Tensor(Float32Array.from({ length: 16 }, (_, i) => i + 1), [1, 1, 4, 4]);
  const convLayer = model.namedChildren()[0][1] as Conv2d;
  convLayer.weight.data.set([0, 1]);
  const out = noGrad(() => new Flatten().forward(new MaxPool2d(2).forward(convLayer.forward(x))));
  assert.deepEqual([...out.data], [0, 0, 0, 0, 6, 8, 14, 16]);
});

test('keptUnits: structured masks by hand, and what breaks them', () => {
  const chain = unitChain(tiny());
  const masks = ones(tiny());
  assert.deepEqual(keptUnits(chain, masks)?.map((k) => [...k]), [[1, 1, 1, 1], [1, 1, 1], [1, 1]], 'all ones: all kept');
  // Neuron 1 of fc1 (row 1) and its outgoing column of fc2; neuron 2 of fc2 and its column of fc3.
  masks.set('fc1.weight', Float32Array.from([1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]));
  masks.set('fc2.weight', Float32Array.from([1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0]));
  masks.set('fc3.weight', Float32Array.from([1, 1, 0, 1, 1, 0]));
  assert.deepEqual(keptUnits(chain, masks)?.map((k) => [...k]), [[1, 0, 1, 1], [1, 1, 0], [1, 1]]);
  const broken = (name: string, i: number, v: number) => {
    const m = new Map(masks);
    m.set(name, Float32Array.from(masks.get(name)!, (x, j) => (j === i ? v : x)));
    return keptUnits(chain, m);
  };
  assert.equal(broken('fc2.weight', 1, 1), null, "a removed neuron's outgoing weight kept");
  assert.equal(broken('fc2.weight', 0, 0), null, 'a kept neuron missing a kept input');
  assert.equal(broken('fc3.weight', 0, 0), null, 'the output layer keeps every row whole');
  assert.equal(broken('fc1.weight', 3, 1), null, 'a removed neuron with an incoming weight');
  const noMask = new Map(masks);
  noMask.delete('fc3.weight');
  assert.equal(keptUnits(chain, noMask), null, 'an unmasked layer after a removed neuron');
});

test('compaction: the smaller model, values gathered by hand, zeros at removed units on the way back', () => {
  const model = tiny();
  model.initialize(new Rng(1, 'init'));
  for (const [, t] of model.namedParameters()) t.data.forEach((_, i) => { t.data[i] = i + 1; });
  const masks = ones(model);
  assert.equal(compaction(model, masks), null, 'nothing removed: nothing to compact');
  // Neuron 1 of fc1 removed.
  masks.set('fc1.weight', Float32Array.from([1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]));
  masks.set('fc2.weight', Float32Array.from([1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]));
  const c = compaction(model, masks)!;
  assert.deepEqual(c.model.describe(), { ...model.describe(), layers: [
    ['fc1', { type: 'linear', in: 3, out: 3, activation: 'relu' }], ['fc2', { type: 'linear', in: 3, out: 3, activation: 'relu' }], ['fc3', { type: 'linear', in: 3, out: 2, activation: 'none' }],
  ] });
  const small = c.compact(model.state());
  assert.deepEqual([...small.get('fc1.weight')!], [1, 2, 3, 7, 8, 9, 10, 11, 12], 'rows 0, 2, 3');
  assert.deepEqual([...small.get('fc1.bias')!], [1, 3, 4]);
  assert.deepEqual([...small.get('fc2.weight')!], [1, 3, 4, 5, 7, 8, 9, 11, 12], 'columns 0, 2, 3');
  assert.deepEqual([...small.get('fc3.weight')!], [1, 2, 3, 4, 5, 6], 'untouched');
  const back = c.expand(small);
  assert.deepEqual([...back.get('fc1.weight')!], [1, 2, 3, 0, 0, 0, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual([...back.get('fc1.bias')!], [1, 0, 3, 4], "the removed neuron's bias is zero");
  assert.deepEqual([...back.get('fc2.weight')!], [1, 0, 3, 4, 5, 0, 7, 8, 9, 0, 11, 12]);
  assert.throws(() => c.compactTensor('fc1.weight', new Float32Array(3)), /'fc1.weight' has 3 values, expected 12/);
  masks.set('fc1.weight', new Float32Array(12));
  masks.set('fc2.weight', new Float32Array(12));
  assert.equal(compaction(model, masks), null, 'a layer with no unit left');
});

/** Structured masks keeping a random `keep` share of every hidden layer's units. */
function randomUnits(model: Model, keep: number, seed: number): Map<string, Float32Array> {
  const chain = unitChain(model), masks = ones(model), rng = new Rng(seed, 'units');
  chain.forEach((l, i) => {
    if (l.output) return;
    for (let j = 0; j < l.units; j++) {
      if (j === 0 || rng.uniform() < keep) continue;
      zeroUnit(masks.get(l.weight)!, l, j);
      zeroInputsFrom(masks.get(chain[i + 1].weight)!, chain[i + 1], j);
    }
  });
  return masks;
}

/** The full model with its weights masked and the compact one, on the same inputs. */
function outputsAgree(model: Model, masks: Map<string, Float32Array>, x: Tensor): void {
  for (const [n, m] of masks) model.parameter(n).data.forEach((_, i, a) => { a[i] *= m[i]; });
  const c = compaction(model, masks)!;
  assert.ok(c, 'compacts');
  c.model.loadState(c.compact(model.state()));
  model.eval();
  c.model.eval();
  const [full, small] = noGrad(() => [Float32Array.from(model.forward(x).data), Float32Array.from(c.model.forward(x).data)]);
  let scale = 0;
  full.forEach((v) => { scale = Math.max(scale, Math.abs(v)); });
  assert.ok(scale > 0);
  full.forEach((v, i) => assert.ok(Math.abs(v - small[i]) <= 1e-5 * scale, `output ${i}: ${v} vs ${small[i]}`));
}

test('a compacted LeNet computes what the masked dense LeNet computes', () => {
  const model = getModel('lenet_300_100').build();
  model.initialize(new Rng(2, 'init'));
  const rng = new Rng(2, 'x');
  // Biases too: a removed neuron's bias must not leak through.
  for (const [n, t] of model.namedParameters()) if (n.endsWith('bias')) t.data.forEach((_, i, a) => { a[i] = rng.normal(); });
  const masks = randomUnits(model, 0.3, 2);
  const c = compaction(model, masks)!;
  const [k1, k2, k3] = c.kept.map((k) => k.reduce((a, v) => a + v, 0));
  assert.ok(k1 > 50 && k1 < 150 && k2 > 15 && k2 < 50 && k3 === 10, `kept ${k1}, ${k2}, ${k3}`);
  assert.deepEqual(c.model.shapes(), new Map([['fc1.weight', [k1, 784]], ['fc1.bias', [k1]], ['fc2.weight', [k2, k1]], ['fc2.bias', [k2]], ['fc3.weight', [10, k2]], ['fc3.bias', [10]]]));
  outputsAgree(model, masks, new Tensor(new Float32Array(5 * 784).map(() => rng.normal()), [5, 784]));
});

test('a compacted Conv-2 computes what the masked dense Conv-2 computes, on random 3x32x32 inputs', () => {
  const model = getModel('conv2').build();
  model.initialize(new Rng(3, 'init'));
  const rng = new Rng(3, 'x');
  for (const [n, t] of model.namedParameters()) if (n.endsWith('bias')) t.data.forEach((_, i, a) => { a[i] = 0.1 * rng.normal(); });
  const masks = randomUnits(model, 0.5, 3);
  const c = compaction(model, masks)!;
  const d = c.model.describe().layers as Array<[string, { in?: number; out?: number }]>;
  const kept = c.kept.map((k) => k.reduce((a, v) => a + v, 0));
  assert.equal(d.find(([n]) => n === 'fc1')![1].in, kept[1] * 16 * 16, "fc1's inputs: conv2's kept channels × 16·16");
  outputsAgree(model, masks, new Tensor(new Float32Array(2 * 3 * 32 * 32).map(() => rng.normal()), [2, 3, 32, 32]));
});

test('VGG-11: a chain through nested layers, batch norm with its conv, global average pooling; compacted, it computes what the masked dense one does in both modes', () => {
  const model = getModel('cifar_vgg_11').build();
  const chain = unitChain(model);
  assert.deepEqual(chain.map((l) => [l.weight, l.norm, l.block]).slice(-3), [
    ['layers.10.conv.weight', 'layers.10.bn', 9], ['layers.11.conv.weight', 'layers.11.bn', 9], ['fc.weight', undefined, 1],
  ]);
  model.initialize(new Rng(4, 'init'));
  const rng = new Rng(4, 'x');
  // Batch-norm state away from its initial values, so a channel's scale, shift and statistics must follow it.
  for (const [n, t] of model.namedTensors()) {
    if (n.endsWith('bn.weight') || n.endsWith('running_var')) t.data.forEach((_, i, a) => { a[i] = 0.5 + rng.uniform(); });
    else if (n.endsWith('bn.bias') || n.endsWith('running_mean') || n.endsWith('conv.bias')) t.data.forEach((_, i, a) => { a[i] = 0.1 * rng.normal(); });
  }
  const masks = randomUnits(model, 0.5, 4);
  const c = compaction(model, masks)!;
  const kept = c.kept.map((k) => k.reduce((a, v) => a + v, 0));
  assert.deepEqual(c.model.parameter('layers.4.bn.weight').shape, [kept[2]]);
  assert.deepEqual(c.model.namedBuffers().find(([n]) => n === 'layers.4.bn.running_var')![1].shape, [kept[2]]);
  assert.deepEqual(c.model.parameter('fc.weight').shape, [10, kept[7]]);
  const x = new Tensor(new Float32Array(2 * 3 * 32 * 32).map(() => rng.normal()), [2, 3, 32, 32]);
  outputsAgree(model, masks, x);
  // Training mode: each kept channel's batch statistics are the same in both networks.
  c.model.loadState(c.compact(model.state()));
  model.train();
  c.model.train();
  const [full, small] = noGrad(() => [Float32Array.from(model.forward(x).data), Float32Array.from(c.model.forward(x).data)]);
  const scale = full.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  full.forEach((v, i) => assert.ok(Math.abs(v - small[i]) <= 1e-4 * scale, `training mode, output ${i}: ${v} vs ${small[i]}`));
});
