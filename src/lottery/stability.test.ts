import { test } from 'node:test';
import assert from 'node:assert/strict';
import { activeContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { getModel } from '../models/registry.js';
import { compileProgram } from '../program/compile.js';
import { resolveTraining } from '../training/hparams.js';
import { loadSplits } from '../training/run.js';
import { train } from '../training/train.js';
import { interpolate, orderSeeds, runStability } from './stability.js';

test('interpolate: alpha 0 and 1 give the two ends exactly, alpha 1/2 their mean', () => {
  const a = new Map([['w', Float32Array.from([1, -2, 0.1])]]), b = new Map([['w', Float32Array.from([3, 2, 0.3])]]);
  assert.deepEqual(interpolate(a, b, 0), a);
  assert.deepEqual(interpolate(a, b, 1), b);
  assert.deepEqual([...interpolate(a, b, 0.5).get('w')!], [2, 0, Math.fround(0.2)]);
});

test('stability on MNIST: the path\'s ends are the two copies\' errors exactly; the barrier is max minus the ends\' mean', () => {
  const h = resolveTraining({ steps: '200it' });
  const r = runStability({ training: h, rewindStep: '50it', points: 5 });
  assert.deepEqual(r.path.map((p) => p.alpha), [0, 0.25, 0.5, 0.75, 1]);
  assert.equal(r.rewindIterations, 50);
  // Copy a, as runStability trains it: θ0, iterations 0-50 in the run's own order, then 50-200 in copy a's.
  const data = loadSplits(h);
  const fit = (state: Map<string, Float32Array>, seed: number, from: number, to: number) => {
    const m = getModel(h.model).build();
    m.loadState(state);
    train({ model: m, data, iterations: to, startAt: from, batchSize: h.batchSize, seed, evalEvery: to - from, optimizer: { name: 'adam', lr: h.lr, momentum: 0, weightDecay: 0 }, backgroundEval: false });
    return m;
  };
  const theta0 = getModel(h.model).build();
  theta0.initialize(new Rng(h.seed, 'init'));
  const a = fit(fit(theta0.state(), h.seed, 0, 50).state(), orderSeeds(h.seed)[0], 50, 200);
  const errorA = 1 - compileProgram(a, { optimizer: null, context: activeContext() }).evaluate(data.test).accuracy;
  assert.equal(r.path[0].testError, errorA);
  assert.notEqual(r.path[0].testError, r.path[4].testError, 'two copies, two results');
  const worst = Math.max(...r.path.map((p) => p.testError));
  assert.equal(r.errorBarrier, worst - (r.path[0].testError + r.path[4].testError) / 2);
  assert.throws(() => runStability({ training: h, rewindStep: '200it', points: 5 }), /--rewind-step 200it \(200 iterations\) must be before the end of the budget/);
  assert.throws(() => runStability({ training: h, rewindStep: '0it', points: 2 }), /--points must be an integer from 3 to 1001, got 2/);
});
