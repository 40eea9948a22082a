/**
 * Checkpoints within a training run: --checkpoint-every's syntax and schedule (on a clock
 * the test moves, never the real one), the random streams a checkpoint keeps, and train()
 * resumed from a checkpoint — after a stop request, and after a crash that lost the steps
 * since the last one — giving the uninterrupted run's weights, curve and kept weights
 * bitwise, on a network with dropout, with Adam and with SGD with momentum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset, type Splits } from '../data/dataset.js';
import { Dropout, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { OptimizerSettings } from '../nn/optim.js';
import { CHECKPOINT_EVERY_DEFAULT, CheckpointSchedule, formatCheckpointEvery, parseCheckpointEvery, type TrainCheckpoint } from './checkpoint.js';
import { train, type TrainOptions } from './train.js';

test('--checkpoint-every: steps, durations, both, off; clear errors', () => {
  assert.deepEqual(parseCheckpointEvery('1ep'), { step: { epochs: 1, iterations: 0 }, seconds: null });
  assert.deepEqual(parseCheckpointEvery('500it'), { step: { epochs: 0, iterations: 500 }, seconds: null });
  assert.deepEqual(parseCheckpointEvery('10min'), { step: null, seconds: 600 });
  assert.deepEqual(parseCheckpointEvery('1.5h'), { step: null, seconds: 5400 });
  assert.deepEqual(parseCheckpointEvery(' 2ep100it + 30s '), { step: { epochs: 2, iterations: 100 }, seconds: 30 });
  assert.deepEqual(parseCheckpointEvery('30s+1ep'), { step: { epochs: 1, iterations: 0 }, seconds: 30 });
  assert.equal(parseCheckpointEvery('off'), null);
  assert.deepEqual(parseCheckpointEvery(CHECKPOINT_EVERY_DEFAULT), { step: { epochs: 1, iterations: 0 }, seconds: 600 });
  assert.equal(formatCheckpointEvery(parseCheckpointEvery('1ep+10min')), '1ep+600s');
  assert.equal(formatCheckpointEvery(null), 'off');
  for (const [bad, why] of [['', /cannot parse ''/], ['10', /cannot parse '10'/], ['10m', /cannot parse '10m'/], ['1ep+2ep', /two steps/],
    ['1s+2s', /two durations/], ['0it', /at least one iteration/], ['1ep+1s+1it', /cannot parse|two steps/], ['never', /'off'/]] as const) {
    assert.throws(() => parseCheckpointEvery(bad), why, bad);
  }
});

test('checkpoint schedule: step multiples, durations since the last one, whichever is later', () => {
  const perEpoch = 10;
  const steps = new CheckpointSchedule(parseCheckpointEvery('25it')!, perEpoch, 0);
  assert.deepEqual([steps.boundaryAfter(0), steps.boundaryAfter(24), steps.boundaryAfter(25), steps.boundaryAfter(26)], [25, 25, 50, 50]);
  assert.deepEqual([10, 20, 25, 30, 50].map((it) => steps.due(it, 0)), [false, false, true, false, true]);

  const minutes = new CheckpointSchedule(parseCheckpointEvery('10min')!, perEpoch, 1000);
  assert.equal(minutes.boundaryAfter(7), Infinity, 'a duration alone adds no run boundaries');
  assert.equal(minutes.due(13, 1000 + 599_999), false);
  assert.equal(minutes.due(13, 1000 + 600_000), true, 'any run boundary once the time has passed');
  minutes.taken(700_000);
  assert.equal(minutes.due(20, 700_000 + 300_000), false, 'counted from the last checkpoint');

  // The default: the first epoch's end at least 10 minutes after the last checkpoint.
  const both = new CheckpointSchedule(parseCheckpointEvery(CHECKPOINT_EVERY_DEFAULT)!, perEpoch, 0);
  assert.equal(both.boundaryAfter(3), 10);
  assert.equal(both.due(10, 60_000), false, 'an epoch, but too soon');
  assert.equal(both.due(15, 700_000), false, 'late enough, but not an epoch boundary');
  assert.equal(both.due(20, 700_000), true);
  assert.throws(() => new CheckpointSchedule(parseCheckpointEvery('1ep')!, 0, 0), /the step is 0 iterations/);
});

test('random streams: an Rng goes on from its state; a model\'s dropout streams by path', () => {
  const a = new Rng(5, 'x');
  for (let i = 0; i < 7; i++) a.nextU32();
  a.normal(); // leaves a spare normal
  const s = a.state();
  const b = new Rng(0, 'other');
  b.restore(JSON.parse(JSON.stringify(s)));
  assert.deepEqual(Array.from({ length: 5 }, () => b.normal()), Array.from({ length: 5 }, () => a.normal()));
  assert.throws(() => b.restore({ s: [0, 0, 0, 0], spareNormal: null }), /not all zero/);
  const net = dropoutNet();
  assert.deepEqual(Object.keys(net.randomState()), ['drop1', 'drop2']);
  assert.throws(() => net.loadRandomState({ drop1: s }), /missing drop2/);
  assert.throws(() => net.loadRandomState({ ...net.randomState(), fc1: s }), /unexpected fc1/);
});

/** A 20-24-16-4 MLP with dropout after both hidden layers. */
function dropoutNet(): Model {
  const m = new Model('mlp_dropout', [
    ['fc1', new Linear(20, 24, 'relu')], ['drop1', new Dropout(0.3, 0)],
    ['fc2', new Linear(24, 16, 'relu')], ['drop2', new Dropout(0.3, 1)], ['fc3', new Linear(16, 4, 'none')],
  ]);
  m.initialize(new Rng(1, 'init'));
  return m;
}

function splits(): Splits {
  const rng = new Rng(2, 'data');
  const make = (n: number) => new Dataset(new Float32Array(n * 20).map(() => rng.normal()), Int32Array.from({ length: n }, () => rng.int(4)), [20], 4);
  return { name: 'synthetic', train: make(120), validation: make(40), test: make(40) };
}

const adam: OptimizerSettings = { name: 'adam', lr: 5e-3, momentum: 0, weightDecay: 0 };
const sgd: OptimizerSettings = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };

for (const optimizer of [adam, sgd]) {
  test(`train() resumed from a checkpoint gives the uninterrupted run's bytes: dropout, ${optimizer.name}, after a stop and after a crash`, () => {
    const context = resolveContext({ threads: 1 }, {});
    const data = splits();
    // 10 iterations per epoch, 57 iterations, evaluations every 4, the state kept at 13.
    const base = (model: Model): TrainOptions => ({ model, data, iterations: 57, batchSize: 12, optimizer, seed: 3, evalEvery: 4, keepStateAt: 13, context, backgroundEval: false });
    const clean = dropoutNet();
    const expected = train(base(clean));

    // Stopped at a request after the 6th run of steps: a checkpoint of where it stopped, then resumed.
    const saved: TrainCheckpoint[] = [];
    let calls = 0;
    const stopped = dropoutNet();
    assert.throws(() => train({ ...base(stopped), stopRequested: () => (++calls === 6 ? 'TEST' : null), checkpoints: { every: parseCheckpointEvery('25it'), save: (cp) => saved.push(cp) } }), /stopped by TEST/);
    assert.ok(saved.length >= 1);
    const atStop = saved[saved.length - 1];
    assert.ok(atStop.iteration > 13 && atStop.iteration < 57 && atStop.keptState, `stopped at ${atStop.iteration}, after the kept state`);
    same(resumeFrom(atStop), expected, clean, 'resumed after a stop');

    // A crash (an error from an evaluation's callback) at iteration 44: the steps after the checkpoint at 25 are lost, then redone.
    const taken: TrainCheckpoint[] = [];
    assert.throws(() => train({
      ...base(dropoutNet()), onEval: (p) => { if (p.iteration === 44) throw new Error('crash'); },
      checkpoints: { every: parseCheckpointEvery('5it'), save: (cp) => taken.push(cp), now: () => 0 },
    }), /crash/);
    assert.deepEqual(taken.map((c) => c.iteration), [5, 10, 15, 20, 25, 30, 35, 40], 'every 5 iterations');
    assert.equal(taken[1].keptState, undefined, 'no kept state before 13');
    same(resumeFrom(taken[1]), expected, clean, 'resumed before the kept state');
    same(resumeFrom(taken[6]), expected, clean, 'resumed after the kept state');

    function resumeFrom(cp: TrainCheckpoint): { result: ReturnType<typeof train>; model: Model } {
      // Through JSON and back, as a checkpoint on disk goes (the random streams' state is JSON).
      const model = dropoutNet();
      const resume = { ...cp, random: JSON.parse(JSON.stringify(cp.random)) };
      return { result: train({ ...base(model), checkpoints: { every: null, resume, save: () => assert.fail('no checkpoints with every: null') } }), model };
    }
  });
}

function same(got: { result: ReturnType<typeof train>; model: Model }, expected: ReturnType<typeof train>, clean: Model, what: string): void {
  assert.deepEqual(got.result.curve, expected.curve, `${what}: the curve`);
  assert.deepEqual(got.result.earlyStop, expected.earlyStop, `${what}: the early-stop point`);
  assert.deepEqual(got.model.state(), clean.state(), `${what}: the final weights`);
  assert.deepEqual(got.result.keptState, expected.keptState, `${what}: the kept weights`);
  assert.deepEqual(got.model.randomState(), clean.randomState(), `${what}: the dropout streams`);
}

test('train() refuses a checkpoint that is not of its training', () => {
  const context = resolveContext({ threads: 1 }, {});
  const data = splits();
  const opts = (model: Model): TrainOptions => ({ model, data, iterations: 20, batchSize: 12, optimizer: adam, seed: 3, evalEvery: 5, context, backgroundEval: false });
  const saved: TrainCheckpoint[] = [];
  train({ ...opts(dropoutNet()), checkpoints: { every: parseCheckpointEvery('10it'), save: (cp) => saved.push(cp) } });
  const cp = saved[0];
  const resume = (c: TrainCheckpoint, o: Partial<TrainOptions> = {}) => () => train({ ...opts(dropoutNet()), ...o, checkpoints: { every: null, resume: c, save: () => {} } });
  assert.throws(resume(cp, { iterations: 8 }), /cannot resume from the checkpoint at iteration 10: it is not an iteration of this training/);
  assert.throws(resume(cp, { keepStateAt: 5 }), /lacks the weights kept at iteration 5/);
  assert.throws(resume({ ...cp, program: 'sparse_mlp' }), /made by the sparse_mlp program, this training runs the graph program/);
  assert.throws(resume({ ...cp, random: {} }), /random streams: missing drop1, drop2/);
  const arrays = new Map(cp.optimizer.arrays);
  arrays.delete('fc2.bias.exp_avg');
  assert.throws(resume({ ...cp, optimizer: { steps: 10, arrays } }), /optimizer state: missing fc2.bias.exp_avg/);
  assert.throws(resume({ ...cp, curve: cp.curve.slice(0, 1) }), /its curve does not hold every evaluation up to it/);
});
