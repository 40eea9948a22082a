import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import { Model } from '../nn/model.js';
import { BackgroundEvaluator } from './background-eval.js';
import { train, type TrainOptions } from './train.js';

const data = getDataset('mnist').load(undefined, 0);

function options(backgroundEval: boolean, density: number): TrainOptions {
  const model = getModel('lenet_300_100').build();
  model.initialize(new Rng(0, 'init'));
  if (density < 1) {
    const rng = new Rng(1, 'mask');
    model.setMasks(new Map(model.prunableNames().map((n) => [n, Float32Array.from({ length: model.parameter(n).size }, () => (rng.uniform() < density ? 1 : 0))])));
  }
  return { model, data, iterations: 30, batchSize: 60, seed: 3, evalEvery: 2, optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 }, backgroundEval };
}

for (const density of [1, 0.05]) {
  test(`background evaluation gives exactly the synchronous points, in order (density ${density})`, () => {
    const seen: number[] = [];
    const bg = train({ ...options(true, density), onEval: (p) => seen.push(p.iteration) });
    const sync = train(options(false, density));
    assert.equal(bg.curve.length, 16);
    assert.deepEqual(bg.curve, sync.curve);
    assert.deepEqual(bg.earlyStop, sync.earlyStop);
    assert.deepEqual(seen, sync.curve.map((p) => p.iteration), 'onEval sees every point in order');
  });
}

test('a model that cannot be rebuilt from its name is evaluated synchronously', () => {
  const lenet = getModel('lenet_300_100').build();
  const custom = new Model('my_own_net', lenet.layers);
  assert.equal(BackgroundEvaluator.create(custom, data), null);
  custom.initialize(new Rng(0, 'init'));
  const r = train({ ...options(true, 1), model: custom, iterations: 4 });
  assert.equal(r.curve.length, 3);
});

test('by default, evaluation goes to the background only when training is not the fused sparse step', () => {
  if (!BackgroundEvaluator.worthwhile(21)) return;  // one core: never in the background
  const create = BackgroundEvaluator.create;
  let made = 0;
  BackgroundEvaluator.create = (model, splits) => {
    made++;
    return create.call(BackgroundEvaluator, model, splits);
  };
  try {
    const byDefault = (density: number) => ({ ...options(false, density), backgroundEval: undefined, iterations: 40 });
    assert.equal(train(byDefault(0.05)).curve.length, 21);
    assert.equal(made, 0, 'the fused sparse step evaluates synchronously');
    train(byDefault(1));
    assert.equal(made, 1, 'the dense network evaluates in the background');
  } finally {
    BackgroundEvaluator.create = create;
  }
});
