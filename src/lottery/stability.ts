import { activeContext, type RunContext } from '../backend/index.js';
import { check } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { parseStep, stepToIterations } from '../core/steps.js';
import { getModel } from '../models/registry.js';
import type { StateDict } from '../nn/model.js';
import { compileProgram } from '../program/compile.js';
import { trainingAugmentation, type TrainingHparams } from '../training/hparams.js';
import { loadSplits } from '../training/run.js';
import { lrSchedule } from '../training/schedule.js';
import { iterationsPerEpoch, train } from '../training/train.js';

/**
 * Instability analysis (Frankle, Dziugaite, Roy & Carbin, ICML 2020): two copies of a
 * network start from the same weights — θ0, or the weights after `rewindStep` iterations of
 * one training run — and train on with different data orders; the test error along the
 * straight line between the two results shows whether they ended in one linearly connected
 * minimum. The error barrier is the largest error on the path minus the mean error of its
 * two ends: about 0 for a stable network.
 */
export interface StabilityOptions {
  readonly training: TrainingHparams;
  /** Where both copies start: '0it' (θ0) or a step of the first training run. */
  readonly rewindStep: string;
  /** Points on the path, ends included (at least 3; the paper's analyses use 30, 11 is plenty for LeNet). */
  readonly points: number;
  /** Masks of prunable weights (a ticket's), applied to both copies and the whole path. */
  readonly masks?: ReadonlyMap<string, Float32Array>;
  readonly context?: RunContext;
  readonly onProgress?: (what: string) => void;
}

export interface PathPoint {
  /** The weight of copy b: the weights are (1 - alpha)·a + alpha·b. */
  readonly alpha: number;
  readonly testLoss: number;
  readonly testError: number;
}

export interface StabilityResult {
  readonly rewindIterations: number;
  readonly iterations: number;
  /** The seeds of the two copies' data orders. */
  readonly orderSeeds: readonly [number, number];
  readonly path: PathPoint[];
  /** max error on the path - (error(0) + error(1)) / 2. */
  readonly errorBarrier: number;
}

/** The two copies train with these data-order seeds: streams no ordinary run of `seed` uses. */
export function orderSeeds(seed: number): [number, number] {
  const r = new Rng(seed, 'stability_order');
  return [r.nextU32(), r.nextU32()];
}

/** Trains the two copies and evaluates the test set along the line between them. */
export function runStability(o: StabilityOptions): StabilityResult {
  check(Number.isInteger(o.points) && o.points >= 3 && o.points <= 1001, `--points must be an integer from 3 to 1001, got ${o.points}`);
  const h = o.training;
  const context = o.context ?? activeContext();
  const data = loadSplits(h);
  const perEpoch = iterationsPerEpoch(data.train.length, h.batchSize);
  const iterations = stepToIterations(parseStep(h.steps, '--steps'), perEpoch);
  const rewindAt = stepToIterations(parseStep(o.rewindStep, '--rewind-step'), perEpoch);
  check(rewindAt < iterations, `--rewind-step ${o.rewindStep} (${rewindAt} iterations) must be before the end of the budget ${h.steps} (${iterations} iterations)`);
  const spec = getModel(h.model, h.dataset);
  const optimizer = { name: h.optimizer, lr: h.lr, momentum: h.momentum, weightDecay: h.weightDecay };
  const schedule = lrSchedule(h, perEpoch, iterations);
  // Trains from iteration `from` to `to` of the budget, with those iterations' learning rates.
  const fit = (init: StateDict, seed: number, from: number, to: number): StateDict => {
    const model = spec.build();
    model.loadState(init);
    train({ model, masks: o.masks, data, iterations: to, startAt: from, batchSize: h.batchSize, seed, evalEvery: Math.max(1, to - from), optimizer, schedule, context, backgroundEval: false,
      augmentation: trainingAugmentation(h) });
    return model.state();
  };
  const theta0 = spec.build();
  theta0.initialize(new Rng(h.seed, 'init'));
  let start = theta0.state();
  if (rewindAt > 0) {
    o.onProgress?.(`training to the rewind step (${rewindAt} iterations)`);
    start = fit(start, h.seed, 0, rewindAt);
  }
  const seeds = orderSeeds(h.seed);
  const ends = seeds.map((s, i) => {
    o.onProgress?.(`training copy ${i === 0 ? 'a' : 'b'} (${iterations - rewindAt} iterations)`);
    return fit(start, s, rewindAt, iterations);
  });
  const model = spec.build();
  const program = compileProgram(model, { masks: o.masks, optimizer: null, context, sampleShape: data.test.sampleShape });
  const line = pathBetween(ends[0], ends[1], o.points, (state) => {
    program.load(state);
    return program.evaluate(data.test);
  });
  return { rewindIterations: rewindAt, iterations, orderSeeds: seeds, ...line };
}

/**
 * The test error at `points` evenly spaced points of the straight line from weights `a`
 * to `b` (ends included: they are a and b exactly) and the error barrier on it.
 */
export function pathBetween(
  a: StateDict, b: StateDict, points: number, test: (state: StateDict) => { loss: number; accuracy: number },
): { path: PathPoint[]; errorBarrier: number } {
  check(Number.isInteger(points) && points >= 3, `--points must be an integer >= 3, got ${points}`);
  const path: PathPoint[] = [];
  for (let p = 0; p < points; p++) {
    const alpha = p / (points - 1);
    const r = test(interpolate(a, b, alpha));
    path.push({ alpha, testLoss: r.loss, testError: 1 - r.accuracy });
  }
  const worst = Math.max(...path.map((q) => q.testError));
  return { path, errorBarrier: worst - (path[0].testError + path[path.length - 1].testError) / 2 };
}

/** (1 - alpha)·a + alpha·b, tensor by tensor; alpha 0 and 1 give a and b exactly. */
export function interpolate(a: StateDict, b: StateDict, alpha: number): StateDict {
  return new Map([...a].map(([n, x]) => {
    const y = b.get(n)!;
    if (alpha === 0) return [n, Float32Array.from(x)];
    if (alpha === 1) return [n, Float32Array.from(y)];
    return [n, x.map((v, i) => (1 - alpha) * v + alpha * y[i])];
  }));
}
