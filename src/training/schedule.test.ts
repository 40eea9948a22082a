import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrSchedule, type ScheduleSettings } from './schedule.js';

const settings = (o: Partial<ScheduleSettings>): ScheduleSettings => ({ lr: 0.1, lrSchedule: 'constant', lrGamma: 0.1, warmupSteps: '0it', ...o });
const rates = (s: ReturnType<typeof lrSchedule>, n: number) => Array.from({ length: n }, (_, i) => s.lrAt(i));

test('learning-rate schedules: constant, step milestones (in epochs or iterations), cosine, linear warmup', () => {
  assert.deepEqual(rates(lrSchedule(settings({}), 10, 100), 3), [0.1, 0.1, 0.1]);
  assert.equal(lrSchedule(settings({}), 10, 100).nextChange(5), Infinity);
  // step:2ep,70it with 10 iterations per epoch: x0.1 from iteration 20, x0.01 from 70.
  const step = lrSchedule(settings({ lrSchedule: 'step:2ep,70it' }), 10, 100);
  assert.deepEqual([step.lrAt(19), step.lrAt(20), step.lrAt(69), step.lrAt(70), step.lrAt(99)], [0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 ** 2, 0.1 * 0.1 ** 2]);
  assert.deepEqual([step.nextChange(0), step.nextChange(20), step.nextChange(70)], [20, 70, Infinity]);
  const cosine = lrSchedule(settings({ lrSchedule: 'cosine' }), 10, 100);
  assert.equal(cosine.lrAt(0), 0.1);
  assert.ok(Math.abs(cosine.lrAt(50) - 0.05) < 1e-15);
  assert.equal(cosine.nextChange(7), 8);
  // Warmup over 4 iterations: lr/4, 2lr/4, 3lr/4, then the schedule's own.
  const warm = lrSchedule(settings({ lrSchedule: 'step:5it', warmupSteps: '4it' }), 10, 100);
  assert.deepEqual(rates(warm, 7), [0.025, 0.05, 0.07500000000000001, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]);
  assert.deepEqual([warm.nextChange(0), warm.nextChange(3), warm.nextChange(5)], [1, 5, Infinity]);
});

test('schedules that cannot be are clear errors', () => {
  assert.throws(() => lrSchedule(settings({ lrSchedule: 'step:100it' }), 10, 100), /milestone 100it \(100 iterations\) is not inside the training budget \(100 iterations\)/);
  assert.throws(() => lrSchedule(settings({ lrSchedule: 'step:5it,3it' }), 10, 100), /milestones must increase/);
  assert.throws(() => lrSchedule(settings({ lrSchedule: 'step:0ep' }), 10, Number.MAX_SAFE_INTEGER), /milestone 0ep is at iteration 0: a milestone lowers the rate after training has started/);
  assert.throws(() => lrSchedule(settings({ lrSchedule: 'step:' }), 10, 100), /--lr-schedule: expected constant, cosine or step:MILESTONES/);
  assert.throws(() => lrSchedule(settings({ lrSchedule: 'step:5it', lrGamma: 0 }), 10, 100), /--lr-gamma must be a positive number/);
  assert.throws(() => lrSchedule(settings({ warmupSteps: '11ep' }), 10, 100), /--warmup-steps 11ep \(110 iterations\) is longer than the training budget/);
});

test('train() follows the schedule and a start iteration: data order and rates by absolute iteration', async () => {
  const { loadSplits } = await import('./run.js');
  const { resolveTraining } = await import('./hparams.js');
  const { getModel } = await import('../models/registry.js');
  const { Rng } = await import('../core/rng.js');
  const { train } = await import('./train.js');
  const h = resolveTraining({});
  const data = loadSplits(h);
  const theta0 = getModel(h.model).build();
  theta0.initialize(new Rng(0, 'init'));
  const fit = (init: Map<string, Float32Array>, from: number, to: number, schedule?: ReturnType<typeof lrSchedule>, masks?: Map<string, Float32Array>) => {
    const m = getModel(h.model).build();
    m.loadState(init);
    // SGD without momentum keeps no state: training in two calls is training in one.
    train({ model: m, masks, data, iterations: to, startAt: from, batchSize: 60, seed: 3, evalEvery: 1000, optimizer: { name: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 }, schedule, backgroundEval: false });
    return m.state();
  };
  const whole = fit(theta0.state(), 0, 12);
  assert.deepEqual(fit(fit(theta0.state(), 0, 5), 5, 12), whole, 'iterations 0-5 then 5-12 are iterations 0-12');
  // A rate that all but vanishes at iteration 5 (x1e-30): training to 12 is training to 5, to 1e-30.
  const vanish = lrSchedule(settings({ lr: 0.05, lrSchedule: 'step:5it', lrGamma: 1e-30 }), 916, 12);
  const maxDiff = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => {
    let d = 0;
    for (const [n, x] of a) x.forEach((v, i) => { d = Math.max(d, Math.abs(v - b.get(n)![i])); });
    return d;
  };
  const five = fit(theta0.state(), 0, 5);
  assert.ok(maxDiff(fit(theta0.state(), 0, 12, vanish), five) < 1e-30);
  assert.ok(maxDiff(fit(theta0.state(), 0, 12), five) > 1e-3, 'without the schedule, iterations 5-12 move the weights');
  // The same on the sparse-MLP program (every layer masked).
  const masks = new Map(getModel(h.model).build().prunableNames().map((n) => [n, Float32Array.from(theta0.state().get(n)!, (_, i) => (i % 3 ? 1 : 0))]));
  assert.ok(maxDiff(fit(theta0.state(), 0, 12, vanish, masks), fit(theta0.state(), 0, 5, undefined, masks)) < 1e-30);
});
