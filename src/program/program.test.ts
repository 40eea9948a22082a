/**
 * Programs: which one a model compiles to, and that they agree — the sparse-MLP program
 * (one kernel call for a run of steps) against the graph program on LeNet at the paper's
 * 3.6% and 21.1% levels over 50 steps, Adam and SGD on a small MLP, runs of steps against
 * one step a call, evaluation, a non-finite loss, state/load/writeBack.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend, referenceBackend, resolveContext, type RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { OptimizerSettings } from '../nn/optim.js';
import { compileProgram } from './compile.js';
import type { Program } from './program.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';

const ctx = (sparse: 'auto' | 'on' | 'off' = 'auto', fused: 'auto' | 'off' = 'auto'): RunContext => resolveContext({ sparse, fused }, {});
const adam: OptimizerSettings = { name: 'adam', lr: 1e-2, momentum: 0, weightDecay: 0 };
const sgd: OptimizerSettings = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };

/** A 30-16-12-5 MLP (first layer `hidden` wide) with Glorot weights, and masks of the given density on every weight. */
function mlp(density: number, seed = 0, extra: Array<[string, Linear | Dropout]> = [], hidden = 16): { model: Model; masks: Map<string, Float32Array> } {
  const model = new Model('mlp', [
    ['fc1', new Linear(30, hidden, 'relu')], ...extra, ['fc2', new Linear(hidden, 12, 'relu')], ['fc3', new Linear(12, 5, 'none')],
  ]);
  model.initialize(new Rng(seed, 'init'));
  const rng = new Rng(seed, 'mask');
  const masks = new Map(model.prunableNames().map((name) => [name, new Float32Array(model.parameter(name).size).map(() => (rng.uniform() < density ? 1 : 0))]));
  return { model, masks };
}

function data(samples = 200): Dataset {
  const rng = new Rng(3, 'data');
  const images = new Float32Array(samples * 30).map(() => rng.normal());
  const labels = Int32Array.from({ length: samples }, () => Math.floor(rng.uniform() * 5));
  return new Dataset(images, labels, [30], 5);
}

function compiled(net: { model: Model; masks: Map<string, Float32Array> }, context: RunContext, optimizer: OptimizerSettings | null = adam): Program {
  return compileProgram(net.model, { masks: net.masks, optimizer, context });
}

test('compileProgram: the sparse-MLP program for a chain of Linear layers that all run sparse, else the dense-MLP program where no masked layer would, else the graph', () => {
  const kind = (net: ReturnType<typeof mlp>, context = ctx()) => compiled(net, context).kind;
  assert.equal(kind(mlp(0.2)), 'sparse_mlp', 'every layer below the density threshold');
  assert.equal(kind(mlp(0.6)), 'sparse_mlp', 'layers of at most SMALL_LAYER_WEIGHTS run sparse at any density');
  assert.equal(kind(mlp(0.6, 0, [], 200)), 'dense_mlp', 'a layer of 6,000 weights above the threshold runs dense, and so do the small ones with it');
  assert.equal(kind(mlp(0.2, 0, [['drop', new Dropout(0.5)]])), 'graph', 'a dropout layer');
  const unmasked = mlp(0.2);
  unmasked.masks.delete('fc3.weight');
  assert.equal(kind(unmasked), 'graph', 'an unmasked layer');
  assert.equal(kind(mlp(0.6, 0, [], 200), ctx('on')), 'sparse_mlp', 'sparse on');
  assert.equal(kind(mlp(0.2), ctx('on', 'off')), 'graph', 'fused off');
  assert.equal(kind(mlp(0.2), ctx('off')), 'dense_mlp', 'sparse off');
  assert.throws(() => compiled({ model: mlp(0.2).model, masks: new Map([['fc1.bias', new Float32Array(16)]]) }, ctx()), /'fc1.bias' is not a prunable weight/);
  assert.throws(() => compiled({ model: mlp(0.2).model, masks: new Map([['fc1.weight', new Float32Array(3)]]) }, ctx()), /mask 'fc1.weight' has 3 values, expected 480/);
  const p = compiled(mlp(0.2), ctx());
  assert.throws(() => p.step({ data: new Dataset(new Float32Array(200 * 31), data().labels, [31], 5), order: new Int32Array(200), from: 0, batchSize: 10 }, new Float64Array(1)),
    /takes samples of 30 features, the data set's are \[31\]/);
  assert.throws(() => compiled(mlp(0.2), ctx(), null).step({ data: data(), order: new Int32Array(200), from: 0, batchSize: 10 }, new Float64Array(1)), /evaluation only/);
  resolveContext({}, {});
});

test('a run of steps in one call = one call a step (losses, weights, Adam\'s step count), on both programs', () => {
  const d = data();
  const order = new Rng(0, 'order').permutation(d.length);
  for (const context of [ctx('on'), ctx('on', 'off')]) {
    const run = (runs: number[]) => {
      const p = compiled(mlp(0.3, 2), context);
      const losses: number[] = [];
      let at = 0;
      for (const k of runs) {
        const l = new Float64Array(k);
        assert.equal(p.step({ data: d, order, from: at * 40, batchSize: 40 }, l), k);
        losses.push(...l);
        at += k;
      }
      return { losses, state: p.state(), kind: p.kind };
    };
    const together = run([4, 1]), apart = run([1, 1, 1, 1, 1]);
    assert.deepEqual(together.losses, apart.losses, together.kind);
    assert.deepEqual(together.state, apart.state, together.kind);
  }
  resolveContext({}, {});
});

test('the graph program runs a Conv2d and its 2x2 max pooling as one op (Module.fusedWith), with the two ops\' losses and weights', () => {
  const build = (fused: boolean) => {
    const conv = new Conv2d(8, 8, 3, { padding: 1, activation: 'relu' });
    if (!fused) (conv as { fusedWith?: unknown }).fusedWith = undefined;  // the two ops, as before the fusion
    const m = new Model('net', [['conv', conv], ['pool', new MaxPool2d(2)], ['flatten', new Flatten()], ['fc', new Linear(8 * 16, 5, 'none')]]);
    m.initialize(new Rng(5, 'init'));
    return m;
  };
  const rng = new Rng(6, 'data');
  const d = new Dataset(new Float32Array(40 * 8 * 64).map(() => rng.normal()), Int32Array.from({ length: 40 }, () => rng.int(5)), [8, 8, 8], 5);
  const order = new Rng(0, 'order').permutation(d.length);
  const be = getBackend() as unknown as Record<string, unknown>;
  const original = be.conv3x3Pool as (...args: unknown[]) => void;
  let calls = 0;
  be.conv3x3Pool = (...args: unknown[]) => { calls++; original(...args); };
  try {
    const run = (fused: boolean) => {
      const p = compileProgram(build(fused), { optimizer: adam, context: ctx() });
      const losses = new Float64Array(4);
      calls = 0;
      p.step({ data: d, order, from: 0, batchSize: 10 }, losses);
      return { losses: Array.from(losses), state: p.state(), calls };
    };
    const fused = run(true), apart = run(false);
    assert.equal(fused.calls, 4, 'one conv3x3Pool a step');
    assert.equal(apart.calls, 0);
    assert.deepEqual(fused.losses, apart.losses);
    assert.deepEqual(fused.state, apart.state);
  } finally {
    be.conv3x3Pool = original;
  }
});

test('the sparse-MLP program gives the graph program\'s losses and weights: Adam and SGD, 30 steps', () => {
  const d = data();
  const order = new Rng(0, 'order').permutation(d.length);
  for (const optimizer of [adam, sgd]) {
    const run = (fused: 'auto' | 'off') => {
      const p = compiled(mlp(0.3, 1), ctx('on', fused), optimizer);
      const losses = new Float64Array(30);
      for (let s = 0; s < 30; s++) p.step({ data: d, order, from: (s % 5) * 40, batchSize: 40 }, losses.subarray(s, s + 1));
      return { losses: [...losses], state: p.state(), kind: p.kind };
    };
    const fused = run('auto'), graph = run('off');
    assert.deepEqual([fused.kind, graph.kind], ['sparse_mlp', 'graph']);
    fused.losses.forEach((l, s) => assert.ok(Math.abs(l - graph.losses[s]) <= 1e-5 * Math.abs(graph.losses[s]), `${optimizer.name} loss ${s}: ${l} vs ${graph.losses[s]}`));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(fused.losses.slice(25)) < mean(fused.losses.slice(0, 5)), `the loss falls: ${fused.losses.join(', ')}`);
    assertClose(fused.state, graph.state, 1e-4, optimizer.name);
  }
  resolveContext({}, {});
});

test('the sparse-MLP program: denseGradients = a dense copy of the model\'s gradients at every entry, smallestWeights = selectByMagnitude over state(), neither changes the training', () => {
  const d = data();
  const order = new Rng(0, 'order').permutation(d.length);
  const net = mlp(0.3, 2);
  const p = compiled(net, ctx('on'));
  const other = compiled(mlp(0.3, 2), ctx('on'));
  const losses = new Float64Array(3);
  p.step({ data: d, order, from: 0, batchSize: 40 }, losses);
  other.step({ data: d, order, from: 0, batchSize: 40 }, losses);
  const names = ['fc1.weight', 'fc3.weight'];
  const got = p.denseGradients!({ data: d, order, from: 120, batchSize: 40 }, names);
  // The same gradient from a dense copy of the model at the live weights.
  const copy = new Model('mlp', [['fc1', new Linear(30, 16, 'relu')], ['fc2', new Linear(16, 12, 'relu')], ['fc3', new Linear(12, 5, 'none')]]);
  copy.loadState(p.state());
  const x = Tensor.zeros([40, 30]), labels = new Int32Array(40);
  d.gather(order, 120, 40, x.data, labels);
  softmaxCrossEntropy(copy.forward(x), labels).backward();
  assert.deepEqual([...got.keys()], names);
  for (const n of names) {
    const want = copy.parameter(n).ensureGrad();
    let worst = 0, scale = 0;
    want.forEach((w, i) => { worst = Math.max(worst, Math.abs(got.get(n)![i] - w)); scale = Math.max(scale, Math.abs(w)); });
    assert.ok(worst <= 1e-5 * scale && scale > 0, `${n}: max diff ${worst} (scale ${scale})`);
    assert.ok(want.some((w, i) => w !== 0 && net.masks.get(n)![i] === 0), `${n}: gradients outside the mask too`);
  }
  const state = p.state();
  for (const n of ['fc1.weight', 'fc2.weight']) {
    const kept = net.masks.get(n)!.reduce((a, m) => a + (m !== 0 ? 1 : 0), 0);
    for (const count of [0, 1, Math.floor(kept / 3), kept]) {
      const out = new Int32Array(count).fill(-1), want = new Int32Array(count);
      p.smallestWeights!(n, count, out);
      referenceBackend.selectByMagnitude(state.get(n)!, net.masks.get(n)!, 1, count, false, want);
      assert.deepEqual(out, want, `${n}, ${count}`);
    }
  }
  assert.throws(() => p.denseGradients!({ data: d, order, from: 0, batchSize: 40 }, ['fc1.bias']), /has no sparse weight fc1\.bias/);
  // The training goes on as the program's that made neither call.
  const after = new Float64Array(2), want = new Float64Array(2);
  p.step({ data: d, order, from: 120, batchSize: 40 }, after);
  other.step({ data: d, order, from: 120, batchSize: 40 }, want);
  assert.deepEqual(after, want);
  assert.deepEqual(p.state(), other.state());
  resolveContext({}, {});
});

/** Every tensor of `got` within `tol` times the largest magnitude of the same tensor in `want`. */
function assertClose(got: Map<string, Float32Array>, want: Map<string, Float32Array>, tol: number, what: string): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    let worst = 0, scale = 0;
    for (let i = 0; i < w.length; i++) {
      worst = Math.max(worst, Math.abs(g[i] - w[i]));
      scale = Math.max(scale, Math.abs(w[i]));
    }
    assert.ok(worst <= tol * scale, `${what} ${name}: max diff ${worst} (scale ${scale})`);
  }
}

const mnist = getDataset('mnist').load(undefined, 0);

for (const [label, layerDensity] of [['3.6%', { fc: 0.8 ** 15, out: 0.9 ** 15 }], ['21.1%', { fc: 0.8 ** 7, out: 0.9 ** 7 }]] as const) {
  test(`LeNet at ${label} on MNIST: the graph and sparse-MLP programs agree over 50 Adam steps`, () => {
    const run = (fused: 'auto' | 'off') => {
      const model = getModel('lenet_300_100').build();
      model.initialize(new Rng(0, 'init'));
      const rng = new Rng(0, 'mask');
      const masks = new Map(model.prunableLayers().map((l) => {
        const d = l.output ? layerDensity.out : layerDensity.fc;
        return [l.name, new Float32Array(model.parameter(l.name).size).map(() => (rng.uniform() < d ? 1 : 0))];
      }));
      const p = compileProgram(model, { masks, optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 }, context: ctx('auto', fused) });
      const order = new Rng(0, 'data', 0).permutation(mnist.train.length);
      const losses = new Float64Array(50);
      assert.equal(p.step({ data: mnist.train, order, from: 0, batchSize: 60 }, losses), 50);
      return { kind: p.kind, losses: [...losses], state: p.state(), val: p.evaluate(mnist.validation) };
    };
    const fused = run('auto'), graph = run('off');
    assert.deepEqual([fused.kind, graph.kind], ['sparse_mlp', 'graph']);
    fused.losses.forEach((l, s) => assert.ok(Math.abs(l - graph.losses[s]) <= 1e-4 * Math.abs(graph.losses[s]), `loss ${s}: ${l} vs ${graph.losses[s]}`));
    assertClose(fused.state, graph.state, 1e-3, label);
    assert.ok(Math.abs(fused.val.loss - graph.val.loss) <= 1e-4 * graph.val.loss, `validation loss ${fused.val.loss} vs ${graph.val.loss}`);
    assert.ok(Math.abs(fused.val.accuracy - graph.val.accuracy) <= 2e-4, `validation accuracy ${fused.val.accuracy} vs ${graph.val.accuracy}`);
    resolveContext({}, {});
  });
}

test('a non-finite loss makes no update, on both programs', () => {
  const d = data();
  d.images.fill(NaN, 0, 30);
  for (const fused of ['auto', 'off'] as const) {
    const p = compiled(mlp(0.3), ctx('on', fused));
    const before = p.state();
    const losses = new Float64Array(3);
    assert.equal(p.step({ data: d, order: Int32Array.from({ length: 30 }, (_, i) => i), from: 0, batchSize: 10 }, losses), 1, `${fused}: stops after the first step`);
    assert.ok(Number.isNaN(losses[0]), `${fused}: loss ${losses[0]}`);
    assert.deepEqual(p.state(), before, `${fused}: weights unchanged`);
  }
  resolveContext({}, {});
});

test('evaluate: the sparse-MLP program gives the graph program\'s loss and accuracy; state, load and writeBack', () => {
  const d = data(333);
  const net = mlp(0.3, 2);
  const fused = compiled(net, ctx('on'), null), graph = compiled(mlp(0.3, 2), ctx('on', 'off'), null);
  const a = fused.evaluate(d), b = graph.evaluate(d);
  assert.equal(a.accuracy, b.accuracy);
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * b.loss, `loss ${a.loss} vs ${b.loss}`);
  // Train a copy, then load its weights into the evaluation program: it evaluates them.
  const trained = compiled(mlp(0.3, 2), ctx('on'));
  trained.step({ data: d, order: new Rng(1, 'order').permutation(d.length), from: 0, batchSize: 30 }, new Float64Array(5));
  fused.load(trained.state());
  assert.deepEqual(fused.evaluate(d), trained.evaluate(d));
  assert.deepEqual(fused.state(), trained.state());
  // After writeBack the model holds the program's weights.
  trained.writeBack();
  fused.writeBack();
  assert.deepEqual(net.model.state(), trained.state());
  resolveContext({}, {});
});
