import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { evaluate, train, trainingStep, trainingSteps } from './train.js';
import { Tensor } from '../tensor/tensor.js';
import { fusedMlpEvaluate, fusedMlpStep, fusedMode } from './fused-mlp.js';
import { Dropout, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Adam, Sgd } from '../nn/optim.js';

/** Runs `fn` with the given LTH_* variables set (undefined: unset), restoring them after. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (vs: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vs)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(vars);
  try {
    return fn();
  } finally {
    set(before);
  }
}

/** A 30-16-12-5 MLP (first layer `hidden` wide) with Glorot weights and masks of the given density on every weight. */
function mlp(density: number, seed = 0, extra: Array<[string, Linear | Dropout]> = [], hidden = 16): Model {
  const model = new Model('mlp', [
    ['fc1', new Linear(30, hidden, 'relu')], ...extra, ['fc2', new Linear(hidden, 12, 'relu')], ['fc3', new Linear(12, 5, 'none')],
  ]);
  model.initialize(new Rng(seed, 'init'));
  const rng = new Rng(seed, 'mask');
  model.setMasks(new Map(model.prunableNames().map((name) => {
    const m = new Float32Array(model.parameter(name).size).map(() => (rng.uniform() < density ? 1 : 0));
    return [name, m];
  })));
  return model;
}

function data(samples = 200): Dataset {
  const rng = new Rng(3, 'data');
  const images = new Float32Array(samples * 30).map(() => rng.normal());
  const labels = Int32Array.from({ length: samples }, () => Math.floor(rng.uniform() * 5));
  return new Dataset(images, labels, [30], 5);
}

test('LTH_FUSED: auto by default, off; anything else is an error', () => {
  assert.equal(withEnv({ LTH_FUSED: undefined }, fusedMode), 'auto');
  assert.equal(withEnv({ LTH_FUSED: 'off' }, fusedMode), 'off');
  assert.throws(() => withEnv({ LTH_FUSED: 'yes' }, fusedMode), /LTH_FUSED must be 'auto' or 'off', got 'yes'/);
});

test('fusedMlpStep applies only to a chain of Linear layers that all run sparse', () => {
  const d = data(), order = Int32Array.from({ length: 60 }, (_, i) => i);
  const step = (m: Model) => fusedMlpStep(m, d, order, 0, 60);
  withEnv({ LTH_SPARSE: undefined, LTH_FUSED: undefined }, () => {
    assert.equal(typeof step(mlp(0.2)), 'number', 'every layer below the density threshold');
    assert.equal(typeof step(mlp(0.6)), 'number', 'layers of at most SMALL_LAYER_WEIGHTS run sparse at any density');
    assert.equal(step(mlp(0.6, 0, [], 200)), null, 'a layer of 6,000 weights above the threshold runs dense');
    assert.equal(step(mlp(0.2, 0, [['drop', new Dropout(0.5)]])), null, 'a dropout layer');
    const unmasked = mlp(0.2);
    unmasked.parameter('fc3.weight').mask = null;
    assert.equal(step(unmasked), null, 'an unmasked layer');
    assert.equal(fusedMlpStep(mlp(0.2), new Dataset(new Float32Array(200 * 31), d.labels, [31], 5), order, 0, 60), null, 'input size');
  });
  withEnv({ LTH_SPARSE: 'on', LTH_FUSED: undefined }, () => assert.equal(typeof step(mlp(0.6)), 'number', 'LTH_SPARSE=on'));
  withEnv({ LTH_SPARSE: 'on', LTH_FUSED: 'off' }, () => assert.equal(step(mlp(0.2)), null, 'LTH_FUSED=off'));
});

test('trainingSteps: a run of fused steps in one call = one call a step (losses, weights, Adam\'s step count)', () => {
  const d = data();
  const order = new Rng(0, 'order').permutation(d.length);
  const run = (runs: number[]) => withEnv({ LTH_SPARSE: 'on', LTH_FUSED: undefined }, () => {
    const model = mlp(0.3, 2);
    const optimizer = new Adam(model.namedParameters().map(([, t]) => t), 1e-2);
    const x = new Tensor(new Float32Array(40 * 30), [40, 30]), labels = new Int32Array(40);
    const losses: number[] = [];
    let at = 0;
    for (const k of runs) {
      const l = new Float64Array(k);
      assert.equal(trainingSteps(model, optimizer, { data: d, order, from: at * 40, x, labels }, l), k);
      losses.push(...l);
      at += k;
    }
    return { losses, state: model.state() };
  });
  const together = run([4, 1]), apart = run([1, 1, 1, 1, 1]);
  assert.deepEqual(together.losses, apart.losses);
  assert.deepEqual(together.state, apart.state);
  assert.throws(() => trainingSteps(mlp(0.3), new Adam([], 1e-2), { data: d, order, from: 160, x: new Tensor(new Float32Array(40 * 30), [40, 30]), labels: new Int32Array(40) }, new Float64Array(2)),
    /2 batches of 40 from 160 do not fit in an order of 200/);
});

test('train: keepStateAt returns the state after that many iterations, between evaluations', () => {
  const d = data();
  const splits = { name: 'random', train: d, validation: data(50), test: data(50) };
  const run = (iterations: number, keepStateAt?: number) => withEnv({ LTH_SPARSE: 'on' }, () => {
    const model = mlp(0.3, 4);
    const r = train({
      model, data: splits, iterations, batchSize: 40, seed: 1, evalEvery: 10, keepStateAt, backgroundEval: false,
      optimizer: { name: 'adam', lr: 1e-2, momentum: 0, weightDecay: 0 },
    });
    return { r, state: model.state() };
  });
  const kept = run(20, 7).r.keptState!, at7 = run(7).state;
  assert.deepEqual(kept, at7);
  assert.equal(run(20).r.keptState, undefined);
});

test('training with the fused step gives the graph\'s weights (Adam and SGD, 30 steps)', () => {
  const d = data();
  for (const make of [(p: Tensor[]) => new Adam(p, 1e-2), (p: Tensor[]) => new Sgd(p, 0.05, 0.9, 1e-4)]) {
    const train = (fused: 'auto' | 'off') => withEnv({ LTH_SPARSE: 'on', LTH_FUSED: fused }, () => {
      const model = mlp(0.3, 1);
      const optimizer = make(model.namedParameters().map(([, t]) => t));
      const x = new Tensor(new Float32Array(40 * 30), [40, 30]), labels = new Int32Array(40);
      const order = new Rng(0, 'order').permutation(d.length);
      const losses: number[] = [];
      for (let s = 0; s < 30; s++) losses.push(trainingStep(model, optimizer, { data: d, order, from: (s % 5) * 40, x, labels }));
      return { losses, state: model.state() };
    });
    const fused = train('auto'), graph = train('off');
    fused.losses.forEach((l, s) => assert.ok(Math.abs(l - graph.losses[s]) <= 1e-5 * Math.abs(graph.losses[s]), `loss ${s}: ${l} vs ${graph.losses[s]}`));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(fused.losses.slice(25)) < mean(fused.losses.slice(0, 5)), `the loss falls: ${fused.losses.join(', ')}`);
    for (const [name, want] of graph.state) {
      const got = fused.state.get(name)!;
      let worst = 0, scale = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      assert.ok(worst <= 1e-4 * scale, `${name}: max diff ${worst} (scale ${scale})`);
    }
  }
});

test('trainingSteps: an optimiser without handOff is stepped after each fused step', () => {
  const d = data();
  const order = Int32Array.from({ length: 200 }, (_, i) => i);
  withEnv({ LTH_SPARSE: 'on', LTH_FUSED: undefined }, () => {
    const run = (plain: boolean) => {
      const model = mlp(0.3, 4);
      const adam = new Adam(model.namedParameters().map(([, t]) => t), 1e-2);
      const optimizer = plain ? { step: () => adam.step() } : adam;
      const x = new Tensor(new Float32Array(40 * 30), [40, 30]), labels = new Int32Array(40);
      assert.equal(trainingSteps(model, optimizer, { data: d, order, from: 0, x, labels }, new Float64Array(3)), 3);
      return model.state();
    };
    const handed = run(false), stepped = run(true);
    for (const [name, w] of handed) assert.deepEqual(stepped.get(name), w, name);
    // The fused call itself cannot run several steps for it.
    const model = mlp(0.3, 4);
    const adam = new Adam(model.namedParameters().map(([, t]) => t), 1e-2);
    assert.throws(() => fusedMlpStep(model, d, order, 0, 40, { step: () => adam.step() }, new Float64Array(2)), /without handOff takes one step at a time/);
  });
});

test('trainingStep: a non-finite loss makes no update', () => {
  const d = data();
  d.images.fill(NaN, 0, 30);
  withEnv({ LTH_SPARSE: 'on', LTH_FUSED: undefined }, () => {
    for (const fused of ['auto', 'off']) {
      withEnv({ LTH_FUSED: fused }, () => {
        const model = mlp(0.3);
        const before = model.state();
        const optimizer = new Adam(model.namedParameters().map(([, t]) => t), 1e-2);
        const loss = trainingStep(model, optimizer, {
          data: d, order: Int32Array.from({ length: 10 }, (_, i) => i), from: 0, x: new Tensor(new Float32Array(300), [10, 30]), labels: new Int32Array(10),
        });
        assert.ok(Number.isNaN(loss), `LTH_FUSED=${fused}: loss ${loss}`);
        for (const [name, w] of model.state()) assert.deepEqual(w, before.get(name), `LTH_FUSED=${fused}: ${name} changed`);
      });
    }
  });
});

test('evaluate: the fused evaluation gives the graph\'s loss and accuracy', () => {
  const d = data(333);
  withEnv({ LTH_SPARSE: 'on', LTH_FUSED: undefined }, () => {
    const model = mlp(0.3, 2);
    assert.ok(fusedMlpEvaluate(model, d), 'the fused evaluation applies');
    const fused = evaluate(model, d);
    const graph = withEnv({ LTH_FUSED: 'off' }, () => evaluate(model, d));
    assert.equal(fused.accuracy, graph.accuracy);
    assert.ok(Math.abs(fused.loss - graph.loss) <= 1e-6 * graph.loss, `loss ${fused.loss} vs ${graph.loss}`);
    assert.equal(fusedMlpEvaluate(mlp(0.3, 2, [['drop', new Dropout(0.5)]]), d), null, 'a dropout layer');
  });
});
