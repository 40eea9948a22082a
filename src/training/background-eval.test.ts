import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import { Model } from '../nn/model.js';
import { Module, type ModuleDesc } from '../nn/module.js';
import { relu } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { train, type TrainOptions } from './train.js';

const data = getDataset('mnist').load(undefined, 0);
const twoThreads = resolveContext({ threads: 2 }, {});

function options(backgroundEval: boolean | undefined, density: number, model = getModel('lenet_300_100').build()): TrainOptions {
  model.initialize(new Rng(0, 'init'));
  const rng = new Rng(1, 'mask');
  const masks = density < 1
    ? new Map(model.prunableNames().map((n) => [n, Float32Array.from({ length: model.parameter(n).size }, () => (rng.uniform() < density ? 1 : 0))]))
    : undefined;
  return {
    model, masks, data, iterations: 30, batchSize: 60, seed: 3, evalEvery: 2, optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 },
    backgroundEval, context: twoThreads,
  };
}

for (const density of [1, 0.05]) {
  test(`background evaluation gives exactly the synchronous points, in order (density ${density})`, () => {
    const seen: number[] = [];
    const bg = train({ ...options(true, density), onEval: (p) => seen.push(p.iteration) });
    const sync = train(options(false, density));
    assert.equal(bg.backgroundEval, true);
    assert.equal(sync.backgroundEval, false);
    assert.equal(bg.curve.length, 16);
    assert.deepEqual(bg.curve, sync.curve);
    assert.deepEqual(bg.earlyStop, sync.earlyStop);
    assert.deepEqual(seen, sync.curve.map((p) => p.iteration), 'onEval sees every point in order');
  });
}

test('a model that is in no registry is evaluated in the background from its description', () => {
  const lenet = getModel('lenet_300_100').build();
  const custom = new Model('my_own_net', lenet.namedChildren());
  const bg = train({ ...options(true, 1, custom), iterations: 4 });
  const again = new Model('my_own_net', getModel('lenet_300_100').build().namedChildren());
  const sync = train({ ...options(false, 1, again), iterations: 4 });
  assert.equal(bg.backgroundEval, true);
  assert.deepEqual(bg.curve, sync.curve);
});

/** A module type of a user's own, which buildModule cannot rebuild in the evaluation thread. */
class MyRelu extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }

  describe(): ModuleDesc {
    return { type: 'my_relu' };
  }
}

test('a model with a module type of the user\'s own is evaluated in the training thread by default; asking for the background says why not', () => {
  const withOwn = () => new Model('clipped', [['clip', new MyRelu()], ...getModel('lenet_300_100').build().namedChildren()]);
  const r = train({ ...options(undefined, 1, withOwn()), iterations: 40 });
  assert.equal(r.backgroundEval, false);
  assert.equal(r.curve.length, 21);
  assert.deepEqual(r.curve, train({ ...options(false, 1, withOwn()), iterations: 40 }).curve);
  assert.throws(() => train({ ...options(true, 1, withOwn()), iterations: 4 }),
    { name: 'LthError', message: /backgroundEval rebuilds the model in a second thread from its description, and lth cannot rebuild module type 'my_relu'; leave backgroundEval unset or false/ });
});

test('by default, evaluation goes to the background only when the program does not use every core itself', () => {
  const byDefault = (density: number) => ({ ...options(undefined, density), iterations: 40 });
  const fused = train(byDefault(0.05));
  assert.equal(fused.curve.length, 21);
  assert.deepEqual([fused.program, fused.backgroundEval], ['sparse_mlp', false], 'the sparse-MLP program evaluates synchronously');
  const dense = train(byDefault(1));
  assert.deepEqual([dense.program, dense.backgroundEval], ['dense_mlp', true], 'the dense network evaluates in the background');
  const one = train({ ...byDefault(1), context: resolveContext({ threads: 1 }, {}) });
  assert.equal(one.backgroundEval, false, 'one thread: never in the background');
  resolveContext({}, {});
});

test('train: keepStateAt returns the state after that many iterations, between evaluations', () => {
  const run = (iterations: number, keepStateAt?: number) => {
    const o = options(false, 0.05);
    const r = train({ ...o, iterations, evalEvery: 10, keepStateAt });
    return { r, state: o.model.state() };
  };
  const kept = run(20, 7).r.keptState!, at7 = run(7).state;
  assert.deepEqual(kept, at7);
  assert.equal(run(20).r.keptState, undefined);
});

test('a language model (a label per position) is evaluated in the background as synchronously', async () => {
  const { Embedding, FlattenTime, LSTM } = await import('../nn/seq-layers.js');
  const { Linear } = await import('../nn/layers.js');
  const book = getDataset('moby_dick').load(undefined, 0);
  const net = () => new Model('tiny_lm', [['embed', new Embedding(96, 8)], ['lstm', new LSTM(8, 16)], ['flat', new FlattenTime()], ['head', new Linear(16, 96, 'none')]]);
  const run = (backgroundEval: boolean) => train({ ...options(backgroundEval, 1, net()), data: book, iterations: 4, evalEvery: 1, batchSize: 8 });
  const bg = run(true), sync = run(false);
  assert.equal(bg.backgroundEval, true);
  assert.deepEqual(bg.curve, sync.curve);
  assert.ok(bg.curve[0].valLoss > 4 && bg.curve[0].valLoss < 5, `loss per character ${bg.curve[0].valLoss} is about ln 96 at θ0`);
});
