/**
 * The dense-MLP program and its kernels: which models compile to it; that it gives the graph
 * program's numbers bit for bit (losses, weights, optimiser state, evaluation) with Adam
 * and with SGD (momentum, weight decay) at 1, 2 and 3 threads, so also independently of the
 * thread count; that the compact program on it matches the compact program on the graph bit
 * for bit; checkpoints; the native kernels against the reference composition; a finite-
 * difference check of the gradient they compute; their errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext, type RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import { unitChain, zeroInputsFrom, zeroUnit } from '../nn/compact.js';
import { Flatten, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { OptimizerSettings } from '../nn/optim.js';
import { compileProgram } from './compile.js';
import { GraphProgram } from './graph.js';
import type { Program } from './program.js';

const context = (threads?: number, fused?: string, simd?: string): RunContext => resolveContext({ threads, fused, simd }, {});
const adam: OptimizerSettings = { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 };
const sgd: OptimizerSettings = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
const mnist = getDataset('mnist').load(undefined, 0);

function lenet(): Model {
  const model = getModel('lenet_300_100').build();
  model.initialize(new Rng(0, 'init'));
  return model;
}

/** A small MLP of odd sizes: 13 -> 37 (ReLU) -> 19 (ReLU) -> 5, or without the ReLUs. */
function small(relu = true): Model {
  const m = new Model('small', [['a', new Linear(13, 37, relu ? 'relu' : 'none')], ['b', new Linear(37, 19, relu ? 'relu' : 'none')], ['c', new Linear(19, 5, 'none')]]);
  m.initialize(new Rng(3, 'init'));
  return m;
}

function randomData(samples: number, features: number, classes: number, seed: number): Dataset {
  const rng = new Rng(seed, 'data');
  return new Dataset(new Float32Array(samples * features).map(() => rng.normal()), Int32Array.from({ length: samples }, () => rng.int(classes)), [features], classes);
}

function steps(p: Program, data: Dataset, batchSize: number, n: number, order: Int32Array, from = 0): number[] {
  const losses = new Float64Array(n);
  assert.equal(p.step({ data, order, from, batchSize }, losses), n);
  return [...losses];
}

test('compileProgram: the dense-MLP program for a chain of two or more Linear layers, unless fused is off or a masked layer runs sparse', () => {
  const kind = (model: Model, ctx = context(), masks?: Map<string, Float32Array>) => compileProgram(model, { masks, optimizer: adam, context: ctx }).kind;
  assert.equal(kind(lenet()), 'dense_mlp');
  assert.equal(kind(small()), 'dense_mlp');
  assert.equal(kind(lenet(), context(undefined, 'off')), 'graph');
  const one = new Model('one', [['fc', new Linear(4, 3, 'none')]]);
  assert.equal(kind(one), 'graph', 'a single layer');
  const flat = new Model('flat', [['f', new Flatten()], ['a', new Linear(4, 3, 'none')], ['b', new Linear(3, 2, 'none')]]);
  assert.equal(kind(flat), 'graph', 'another module in the chain');
  const masks = new Map([['fc1.weight', new Float32Array(784 * 300).fill(1)]]);
  assert.equal(kind(lenet(), context(), masks), 'dense_mlp', 'masks (that remove nothing)');
  const rng = new Rng(1, 'mask');
  const at = (density: number) => new Map(lenet().prunableNames().map((name) => [name, new Float32Array(lenet().parameter(name).size).map(() => (rng.uniform() < density ? 1 : 0))]));
  assert.equal(kind(lenet(), context(), at(0.5)), 'dense_mlp', 'IMP\'s first levels: every layer above the sparse threshold');
  assert.equal(kind(lenet(), context(), at(0.2)), 'sparse_mlp', 'every layer below it');
  const partly = at(0.2);
  partly.delete('fc3.weight');
  assert.equal(kind(lenet(), context(), partly), 'graph', 'fc1 and fc2 below it, fc3 unmasked: the graph runs them sparse');
  assert.equal(compileProgram(lenet(), { optimizer: adam, context: context() }).sparseWeights.size, 0);
});

test('LeNet on MNIST, 30 Adam steps: the dense-MLP program gives the graph program\'s numbers bit for bit, at 1, 2 and 3 threads', () => {
  const order = new Rng(0, 'data', 0).permutation(mnist.train.length);
  const run = (p: Program) => ({ kind: p.kind, losses: steps(p, mnist.train, 60, 30, order), state: p.state(), opt: p.optimizerState(), val: p.evaluate(mnist.validation) });
  const graph = run(new GraphProgram(lenet(), { optimizer: adam, context: context() }));
  assert.ok(graph.losses[29] < graph.losses[0] - 0.5, `the loss falls: ${graph.losses[0]} -> ${graph.losses[29]}`);
  for (const threads of [1, 2, 3]) {
    const fused = run(compileProgram(lenet(), { optimizer: adam, context: context(threads) }));
    assert.equal(fused.kind, 'dense_mlp');
    assert.deepEqual(fused, { ...graph, kind: 'dense_mlp' }, `${threads} threads`);
    assert.deepEqual([...fused.opt.arrays.keys()], [...graph.opt.arrays.keys()], 'the same names in the same order');
  }
  context();
});

test('LeNet at IMP\'s first levels (masks at 51% and 41%), 20 Adam and SGD steps: the dense-MLP program gives the graph\'s numbers (dense masked weights) bit for bit, at 1 and 2 threads', () => {
  const order = new Rng(0, 'data', 0).permutation(mnist.train.length);
  for (const [density, optimizer] of [[0.512, adam], [0.41, sgd]] as const) {
    const rng = new Rng(7, 'mask');
    const masks = new Map(lenet().prunableNames().map((name) => [name, new Float32Array(lenet().parameter(name).size).map(() => (rng.uniform() < density ? 1 : 0))]));
    const run = (p: Program) => ({ losses: steps(p, mnist.train, 60, 20, order), state: p.state(), opt: p.optimizerState(), val: p.evaluate(mnist.validation) });
    const graph = run(new GraphProgram(lenet(), { masks, optimizer, context: resolveContext({ sparse: 'off' }, {}) }));
    for (const name of masks.keys()) {
      const w = graph.state.get(name)!, m = masks.get(name)!;
      assert.ok(w.every((v, i) => m[i] !== 0 || v === 0), `${name}: pruned weights stay zero`);
    }
    for (const threads of [1, 2]) {
      const p = compileProgram(lenet(), { masks, optimizer, context: context(threads) });
      assert.equal(p.kind, 'dense_mlp');
      assert.deepEqual(run(p), graph, `density ${density}, ${optimizer.name}, ${threads} threads`);
    }
  }
  context();
});

test('a small MLP of odd sizes, 14 SGD steps with momentum and weight decay, batches of 7: bit for bit the graph\'s, at 1, 2 and 3 threads and on every SIMD path', () => {
  for (const relu of [true, false]) {
    const data = randomData(100, 13, 5, 1);
    const order = new Rng(2, 'order').permutation(100);
    // A second call on another order: the batch gathered ahead by the first call's last step is not that one's.
    const other = new Rng(3, 'order').permutation(100);
    const run = (p: Program) => ({ losses: [...steps(p, data, 7, 12, order), ...steps(p, data, 7, 2, other, 84)], state: p.state(), opt: p.optimizerState(), val: p.evaluate(data) });
    const graph = run(new GraphProgram(small(relu), { optimizer: sgd, context: context() }));
    for (const threads of [1, 2, 3]) assert.deepEqual(run(compileProgram(small(relu), { optimizer: sgd, context: context(threads) })), graph, `relu ${relu}, ${threads} threads`);
    // The other SIMD paths' micro-kernels (other tile sizes): their own graph numbers, bit for bit.
    for (const simd of ['avx2', 'scalar']) {
      const want = run(new GraphProgram(small(relu), { optimizer: sgd, context: context(2, undefined, simd) }));
      assert.deepEqual(run(compileProgram(small(relu), { optimizer: sgd, context: context(2, undefined, simd) })), want, `relu ${relu}, ${simd}`);
    }
  }
  context();
});

test('the compact program of LeNet at 25% of its neurons on the dense-MLP program: bit for bit the compact program on the graph', () => {
  const model = lenet();
  const chain = unitChain(model), rng = new Rng(5, 'units');
  const masks = new Map(chain.map((l) => [l.weight, new Float32Array(model.parameter(l.weight).size).fill(1)]));
  chain.forEach((l, i) => {
    if (l.output) return;
    for (const j of rng.permutation(l.units).subarray(Math.round(0.25 * l.units))) {
      zeroUnit(masks.get(l.weight)!, l, j);
      zeroInputsFrom(masks.get(chain[i + 1].weight)!, chain[i + 1], j);
    }
  });
  const order = new Rng(0, 'data', 0).permutation(mnist.train.length);
  const run = (ctx: RunContext) => {
    const p = compileProgram(lenet(), { masks, optimizer: adam, context: ctx });
    return { kind: p.kind, losses: steps(p, mnist.train, 60, 20, order), state: p.state(), opt: p.optimizerState(), val: p.evaluate(mnist.validation) };
  };
  const onGraph = run(context(undefined, 'off'));
  assert.equal(onGraph.kind, 'compact');
  assert.deepEqual(run(context()), onGraph);
});

test('the dense-MLP program: checkpoints go on bitwise (from itself and from the graph program); writeBack; errors', () => {
  const data = randomData(90, 13, 5, 4);
  const order = new Rng(3, 'order').permutation(90);
  const original = compileProgram(small(), { optimizer: adam, context: context() });
  steps(original, data, 9, 4, order);
  const graph = new GraphProgram(small(), { optimizer: adam, context: context() });
  steps(graph, data, 9, 4, order);
  const snapshots = [original, graph].map((p) => ({ state: p.state(), opt: p.optimizerState() }));
  const goOn = steps(original, data, 9, 5, order, 36), after = original.state();
  for (const snap of snapshots) {
    const fresh = compileProgram(small(), { optimizer: adam, context: context() });
    fresh.load(snap.state);
    fresh.loadOptimizerState(snap.opt);
    assert.deepEqual(steps(fresh, data, 9, 5, order, 36), goOn);
    assert.deepEqual(fresh.state(), after);
  }
  const model = small();
  const p = compileProgram(model, { optimizer: adam, context: context() });
  steps(p, data, 9, 2, order);
  assert.notDeepEqual(model.state(), p.state(), 'the program trains its own copies');
  p.writeBack();
  assert.deepEqual(model.state(), p.state());
  assert.throws(() => p.step({ data: randomData(10, 12, 5, 0), order, from: 0, batchSize: 2 }, new Float64Array(1)), /small: takes samples of 13 features/);
  assert.throws(() => compileProgram(small(), { optimizer: null, context: context() }).step({ data, order, from: 0, batchSize: 9 }, new Float64Array(1)), /evaluation only/);
  const bad = Int32Array.from(order);
  bad[12] = 90;
  assert.throws(() => p.step({ data, order: bad, from: 9, batchSize: 9 }, new Float64Array(2)), /indices\[12\] = 90 is outside \[0, 90\)/);
});
