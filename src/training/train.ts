import { getBackend } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Dataset, Splits } from '../data/dataset.js';
import { fusedMlpEvaluate, fusedMlpStep, fusedMlpTrains, runLength } from './fused-mlp.js';
import type { Model, StateDict } from '../nn/model.js';
import { Adam, Sgd, type Optimizer } from '../nn/optim.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { BufferArena, Tensor, noGrad } from '../tensor/tensor.js';
import { BackgroundEvaluator } from './background-eval.js';

export interface OptimizerSettings {
  readonly name: 'adam' | 'sgd';
  readonly lr: number;
  /** SGD only. */
  readonly momentum: number;
  /** SGD only (coupled L2, as PyTorch). */
  readonly weightDecay: number;
}

export interface TrainOptions {
  readonly model: Model;
  readonly data: Splits;
  /** Total iterations (minibatches). */
  readonly iterations: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerSettings;
  /** Seeds the data order: epoch e is a permutation drawn from stream ('data', e). */
  readonly seed: number;
  /** Evaluate validation and test every this many iterations (and at 0 and the end). */
  readonly evalEvery: number;
  /** Called after each evaluation, e.g. for progress. */
  readonly onEval?: (point: EvalPoint) => void;
  /** Keep the model's state after this many iterations (rewind weights): TrainResult.keptState. */
  readonly keepStateAt?: number;
  /**
   * Evaluate in a second thread while training goes on (same points; see
   * background-eval.ts). Default: when there are at least 20 evaluations and 2 cores, and
   * training does not take the fused sparse step (which uses both cores itself).
   */
  readonly backgroundEval?: boolean;
}

export interface EvalPoint {
  readonly iteration: number;
  readonly valLoss: number;
  readonly valAccuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
}

export interface TrainResult {
  readonly curve: EvalPoint[];
  /** The evaluation of minimum validation loss (the earliest, on ties). */
  readonly earlyStop: EvalPoint;
  readonly final: EvalPoint;
  readonly seconds: number;
  /** The state after keepStateAt iterations, when asked for (and 0 < keepStateAt <= iterations). */
  readonly keptState?: StateDict;
}

export function iterationsPerEpoch(trainSize: number, batchSize: number): number {
  return Math.floor(trainSize / batchSize);
}

/**
 * Where a run of steps that starts at iteration `it` ends: at the epoch's end or the next
 * evaluation point, and at most at `limit` (train() runs each run in one trainingSteps call).
 */
export function runEnd(it: number, perEpoch: number, evalEvery: number, limit: number): number {
  return Math.min(limit, it - (it % perEpoch) + perEpoch, (Math.floor(it / evalEvery) + 1) * evalEvery);
}

export function makeOptimizer(model: Model, s: OptimizerSettings): Optimizer {
  const params = model.namedParameters().map(([, t]) => t);
  return s.name === 'adam' ? new Adam(params, s.lr) : new Sgd(params, s.lr, s.momentum, s.weightDecay);
}

/**
 * Mean loss and accuracy of `model` over `data`, in batches, without recording
 * gradients. Image data (conv nets) goes in smaller batches: a Conv-2 layer's output
 * for 1000 CIFAR images would be 262 MB. An MLP whose layers all run sparse is
 * evaluated in one backend call instead (training/fused-mlp.ts; in its own chunks).
 */
export function evaluate(model: Model, data: Dataset, batchSize = data.sampleShape.length > 1 ? 100 : 1000): { loss: number; accuracy: number } {
  const fused = fusedMlpEvaluate(model, data);
  if (fused) return fused;
  const be = getBackend();
  let lossSum = 0, correct = 0;
  noGrad(() => {
    for (const { x, labels } of evaluationBatches(data, batchSize)) {
      evaluationArena.run(() => {
        const n = labels.length;
        const logits = model.forward(x, false);
        lossSum += be.softmaxXent(logits.data, labels, n, logits.shape[1], null, 0);
        correct += be.countCorrect(logits.data, labels, n, logits.shape[1]);
      });
    }
  });
  return { loss: lossSum / data.length, accuracy: correct / data.length };
}

/** The activations of evaluation batches, reused from batch to batch. */
const evaluationArena = new BufferArena();

interface Batch {
  readonly x: Tensor;
  readonly labels: Int32Array;
}
const batchCache = new WeakMap<Dataset, Map<number, Batch[]>>();

/**
 * The evaluation batches of a data set, made once per (data set, batch size): the same
 * frozen tensors every evaluation, so ops may cache what they derive from the samples.
 */
function evaluationBatches(data: Dataset, batchSize: number): Batch[] {
  let bySize = batchCache.get(data);
  if (!bySize) batchCache.set(data, (bySize = new Map()));
  let batches = bySize.get(batchSize);
  if (!batches) {
    batches = [];
    const d = data.sampleSize;
    for (let from = 0; from < data.length; from += batchSize) {
      const n = Math.min(batchSize, data.length - from);
      batches.push({
        x: Tensor.frozenOf(data.images.subarray(from * d, (from + n) * d), [n, ...data.sampleShape]),
        labels: data.labels.subarray(from, from + n),
      });
    }
    bySize.set(batchSize, batches);
  }
  return batches;
}

/**
 * The one training loop: minibatch SGD/Adam over a training set reshuffled every
 * epoch (an epoch is ⌊N/B⌋ full batches), evaluating validation and test every
 * `evalEvery` iterations. Masks travel on the model's parameters; this loop never
 * sees them.
 */
export function train(opts: TrainOptions): TrainResult {
  const { model, data, iterations, batchSize, evalEvery } = opts;
  check(Number.isInteger(iterations) && iterations >= 0, `train: iterations must be a non-negative integer, got ${iterations}`);
  check(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= data.train.length,
    `train: batch size must be an integer in [1, ${data.train.length}], got ${batchSize}`);
  check(Number.isInteger(evalEvery) && evalEvery >= 1, `train: eval-every must be a positive integer, got ${evalEvery}`);
  const started = performance.now();
  const optimizer = makeOptimizer(model, opts.optimizer);
  model.seed(opts.seed); // dropout masks, like the data order, follow the run's seed
  const perEpoch = iterationsPerEpoch(data.train.length, batchSize);
  const d = data.train.sampleSize;
  const xBuf = new Float32Array(batchSize * d);
  const yBuf = new Int32Array(batchSize);
  const x = new Tensor(xBuf, [batchSize, ...data.train.sampleShape]);
  // Every tensor of a step dies with it: the next step reuses their buffers.
  const stepArena = new BufferArena();
  const curve: EvalPoint[] = [];
  const deliver = (point: EvalPoint) => {
    curve.push(point);
    opts.onEval?.(point);
  };
  const points = Math.floor(iterations / evalEvery) + (iterations % evalEvery ? 2 : 1);
  // The fused sparse step uses both cores; a background evaluation, taking one, made it
  // slower overall (LeNet, 10,000 iterations evaluated every 100: at 3.6% 3.3 against
  // 2.9 s, at 1.9% 1.4 against 1.0 s), while the dense network gains (7.0 against 9.0 s).
  const inBackground = opts.backgroundEval ?? (BackgroundEvaluator.worthwhile(points) && !fusedMlpTrains(model, data.train));
  const background = inBackground ? BackgroundEvaluator.create(model, data) : null;

  const evalNow = (iteration: number) => {
    if (background) {
      background.submit(iteration);
      return;
    }
    const val = evaluate(model, data.validation);
    const test = evaluate(model, data.test);
    deliver({ iteration, valLoss: val.loss, valAccuracy: val.accuracy, testLoss: test.loss, testAccuracy: test.accuracy });
  };

  let keptState: StateDict | undefined;
  // Steps run in runs up to the next evaluation, the epoch's end or keepStateAt: one
  // backend call for all of them where the model allows (trainingSteps).
  const losses = new Float64Array(Math.min(evalEvery, perEpoch));
  try {
    let order: Int32Array | null = null;
    evalNow(0);
    for (let it = 0; it < iterations;) {
      const epoch = Math.floor(it / perEpoch), inEpoch = it % perEpoch;
      if (inEpoch === 0 || !order) order = new Rng(opts.seed, 'data', epoch).permutation(data.train.length);
      let end = runEnd(it, perEpoch, evalEvery, iterations);
      if (opts.keepStateAt !== undefined && it < opts.keepStateAt) end = Math.min(end, opts.keepStateAt);
      const batch = { data: data.train, order, from: inEpoch * batchSize, x, labels: yBuf };
      const run = losses.subarray(0, end - it);
      const ran = stepArena.run(() => trainingSteps(model, optimizer, batch, run));
      const loss = run[ran - 1];
      if (!Number.isFinite(loss)) {
        throw new LthError(`training diverged: loss is ${loss} at iteration ${it + ran - 1} (learning rate ${opts.optimizer.lr} too high?)`);
      }
      it += ran;
      if (it === opts.keepStateAt) keptState = model.state();
      if (it % evalEvery === 0 || it === iterations) evalNow(it);
      if (background) background.poll().forEach(deliver);
    }
    if (background) background.finish().forEach(deliver);
  } finally {
    background?.close();
  }
  return {
    curve, earlyStop: earlyStopPoint(curve), final: curve[curve.length - 1], seconds: (performance.now() - started) / 1000, keptState,
  };
}

/**
 * A minibatch by reference: samples order[from .. from + x.shape[0]) of `data`. The graph
 * path gathers them into x and labels; the fused step reads them from the data set.
 */
export interface Minibatch {
  readonly data: Dataset;
  readonly order: Int32Array;
  readonly from: number;
  readonly x: Tensor;
  readonly labels: Int32Array;
}

/**
 * One optimiser step on a minibatch: the mean softmax cross-entropy of the model's
 * outputs, its gradients, the update. Returns the loss; when it is not finite no update is
 * made, and the caller says what went wrong. (trainingSteps with one step.)
 */
export function trainingStep(model: Model, optimizer: Optimizer, batch: Minibatch): number {
  const losses = new Float64Array(1);
  trainingSteps(model, optimizer, batch, losses);
  return losses[0];
}

/**
 * losses.length optimiser steps on consecutive minibatches: step s on samples
 * order[from + s·B .. from + (s+1)·B) of `data` (B = labels.length), its loss in
 * losses[s]. Stops after a step whose loss is not finite (it makes no update) and returns
 * the number of steps run. A chain of sparse Linear layers takes the fused step
 * (training/fused-mlp.ts), all steps in one backend call when the optimiser hands off its
 * update; any other model runs through the graph.
 */
export function trainingSteps(model: Model, optimizer: Optimizer, batch: Minibatch, losses: Float64Array): number {
  const { data, order, from, x, labels } = batch;
  const n = labels.length;
  check(losses.length >= 1 && from + losses.length * n <= order.length,
    `trainingSteps: ${losses.length} batches of ${n} from ${from} do not fit in an order of ${order.length}`);
  // With handOff, a null answer means the model is no fused chain: the graph, without asking again.
  if (optimizer.handOff && fusedMlpStep(model, data, order, from, n, optimizer, losses) !== null) return runLength(losses);
  const mayFuse = !optimizer.handOff;
  for (let s = 0; s < losses.length; s++) {
    const loss = (losses[s] = graphStep(model, optimizer, { data, order, from: from + s * n, x, labels }, mayFuse));
    if (!Number.isFinite(loss)) return s + 1;
  }
  return losses.length;
}

/** One step without handing the update off: fused gradients (if `mayFuse`) or the graph, then optimizer.step(). */
function graphStep(model: Model, optimizer: Optimizer, batch: Minibatch, mayFuse: boolean): number {
  const { data, order, from, x, labels } = batch;
  const fused = mayFuse ? fusedMlpStep(model, data, order, from, labels.length) : null;
  if (fused !== null) {
    if (Number.isFinite(fused)) optimizer.step();
    return fused;
  }
  data.gather(order, from, labels.length, x.data, labels);
  const t = softmaxCrossEntropy(model.forward(x, true), labels);
  const loss = t.data[0];
  if (Number.isFinite(loss)) {
    t.backward();
    optimizer.step();
  }
  return loss;
}

/** The point of minimum validation loss; the earliest on ties. NaN losses never win. */
export function earlyStopPoint(curve: readonly EvalPoint[]): EvalPoint {
  let best = curve[0];
  for (const p of curve) if (p.valLoss < best.valLoss || Number.isNaN(best.valLoss)) best = p;
  return best;
}
