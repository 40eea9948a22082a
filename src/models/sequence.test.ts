/**
 * The sequence models: prunable weights pinned, their data sets and defaults, and that each
 * compiles to the graph program (whatever the sparse mode), trains a few masked steps with
 * its masked weights held at zero, and evaluates a loss per label (per character for the
 * language models) on a batch of the data set's shape.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { getDataset } from '../data/registry.js';
import { buildModel } from '../nn/build.js';
import { weightMacs } from '../nn/flops.js';
import { compileProgram } from '../program/compile.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { getModel } from './registry.js';

const NAMES = ['text_cnn', 'text_transformer', 'char_lstm', 'char_transformer', 'sensor_cnn'];

test('sequence models: prunable weights, defaults and rates', () => {
  const prunable = (name: string) => getModel(name).build().prunableLayers().map((l) => `${l.name}:${l.shape.join('x')}`);
  assert.deepEqual(prunable('char_lstm'), ['embed.weight:96x64', 'lstm.weight_ih_l0:1024x64', 'lstm.weight_hh_l0:1024x256',
    'lstm.weight_ih_l1:1024x256', 'lstm.weight_hh_l1:1024x256', 'head.weight:96x256']);
  assert.deepEqual(prunable('text_cnn'), ['embed.weight:10000x64', 'conv.weight:128x64x5', 'fc.weight:2x128']);
  assert.deepEqual(prunable('sensor_cnn'), ['conv1.weight:32x2x5', 'conv2.weight:64x32x5', 'fc1.weight:64x64', 'fc2.weight:2x64']);
  assert.equal(prunable('char_transformer').length, 4 * 4 + 2);
  assert.equal(prunable('text_transformer').length, 2 * 4 + 2);
  for (const name of NAMES) {
    const spec = getModel(name), model = spec.build();
    const rates = spec.pruningRates(model);
    assert.equal(rates.get(model.outputWeightName()), 0.1, name);
    assert.ok([...rates].filter(([n]) => n !== model.outputWeightName()).every(([, r]) => r === 0.2), name);
    assert.doesNotThrow(() => getDataset(spec.training.dataset));
    assert.deepEqual(buildModel(model.describe()).describe(), model.describe());
    const weights = model.prunableLayers().reduce((a, l) => a + l.shape.reduce((x, y) => x * y, 1), 0);
    assert.ok(spec.description.includes(`(${weights.toLocaleString('en-US')} prunable weights)`), `${name}: ${spec.description}`);
  }
});

test('sequence models compile to the graph program, train masked steps and evaluate a loss per label', () => {
  for (const name of NAMES) {
    const spec = getModel(name), d = getDataset(spec.training.dataset);
    const rng = new Rng(0, 'test');
    const model = spec.build();
    model.initialize(new Rng(0, 'init'));
    const n = 6, size = d.sampleShape.reduce((a, b) => a * b, 1);
    const lm = spec.training.dataset === 'moby_dick';
    const x = new Float32Array(n * size).map(() => (d.sampleShape.length === 1 ? Math.floor(rng.uniform() * 50) : rng.normal()));
    const labelShape = lm ? d.sampleShape : [];
    const labels = Int32Array.from({ length: n * (lm ? size : 1) }, () => Math.floor(rng.uniform() * 2));
    const data = new Dataset(x, labels, d.sampleShape, d.numClasses, labelShape);
    const masks = new Map(model.prunableNames().map((w) => [w, new Float32Array(model.parameter(w).size).map(() => (rng.uniform() < 0.1 ? 1 : 0))]));
    for (const sparse of ['auto', 'on'] as const) {
      const program = compileProgram(model, { masks, optimizer: { name: 'adam', lr: 1e-3, momentum: 0, weightDecay: 0 }, context: resolveContext({ sparse }, {}) });
      assert.equal(program.kind, 'graph', `${name} sparse ${sparse}`);
      const losses = new Float64Array(3);
      assert.equal(program.step({ data, order: Int32Array.of(0, 1, 2, 3, 4, 5), from: 0, batchSize: 2 }, losses), 3);
      assert.ok(losses.every(Number.isFinite), `${name}: losses ${losses}`);
      const ev = program.evaluate(data);
      assert.ok(Number.isFinite(ev.loss) && ev.accuracy >= 0 && ev.accuracy <= 1, `${name}: ${JSON.stringify(ev)}`);
      if (lm) assert.ok(Math.abs(ev.loss - Math.log(d.numClasses)) < 1.5, `${name}: a fresh model's loss per character ${ev.loss}`);
      const state = program.state();
      for (const [w, m] of masks) assert.ok(state.get(w)!.every((v, i) => m[i] === 1 || v === 0), `${name}: ${w} pruned entries stay zero`);
    }
  }
});

test('a language model is evaluated per character: the mean cross-entropy over every position, in batches of bounded memory', () => {
  const spec = getModel('char_transformer'), d = getDataset('moby_dick');
  const model = spec.build();
  model.initialize(new Rng(1, 'init'));
  const rng = new Rng(2, 'test');
  const n = 150, T = d.sampleShape[0];
  const x = new Float32Array(n * T).map(() => rng.int(d.numClasses));
  const labels = Int32Array.from({ length: n * T }, () => rng.int(d.numClasses));
  const data = new Dataset(x, labels, [T], d.numClasses, [T]);
  const program = compileProgram(model, { optimizer: null, context: resolveContext({}, {}) });
  const ev = program.evaluate(data);
  // The whole set in one pass, straight from the model.
  const direct = noGrad(() => softmaxCrossEntropy(model.eval().forward(new Tensor(x, [n, T])), labels)).data[0];
  assert.ok(Math.abs(ev.loss - direct) < 1e-5 * direct, `${ev.loss} vs ${direct}`);
  const arena = (program as unknown as { evalArena: { floats(): number } }).evalArena;
  assert.ok(arena.floats() <= 32 * 1024 * 1024, `an evaluation batch took ${arena.floats()} floats`);
  assert.ok(arena.floats() < 0.8 * n * (program as unknown as { evalFloatsPerSample: number }).evalFloatsPerSample, 'more than one batch');
});

test('FLOP accounting: every prunable weight of the sequence models, at its MACs per sample', () => {
  const macs = (name: string) => {
    const spec = getModel(name);
    return new Map(weightMacs(spec.build(), getDataset(spec.training.dataset).sampleShape).map((w) => [w.name, w.macs]));
  };
  const lstm = macs('char_lstm');
  assert.deepEqual([...lstm], [['embed.weight', 0], ['lstm.weight_ih_l0', 1024 * 64 * 64], ['lstm.weight_hh_l0', 1024 * 256 * 64],
    ['lstm.weight_ih_l1', 1024 * 256 * 64], ['lstm.weight_hh_l1', 1024 * 256 * 64], ['head.weight', 96 * 256 * 64]]);
  const tf = macs('char_transformer');
  assert.equal(tf.get('block2.self_attn.in_proj_weight'), 384 * 128 * 64);
  assert.equal(tf.get('block2.self_attn.out_proj.weight'), 128 * 128 * 64);
  assert.equal(tf.get('block4.linear2.weight'), 128 * 512 * 64);
  assert.equal(tf.get('head.weight'), 96 * 128 * 64);
  for (const name of NAMES) {
    const model = getModel(name).build();
    assert.deepEqual([...macs(name).keys()].sort(), model.prunableNames().sort(), `${name}: every prunable weight counted once`);
  }
  assert.equal(macs('text_cnn').get('conv.weight'), 128 * 64 * 5 * 128);
});
