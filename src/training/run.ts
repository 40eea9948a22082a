import path from 'node:path';
import { activeContext, type RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { parseStep, stepToIterations } from '../core/steps.js';
import { Dataset, type Splits } from '../data/dataset.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import { writeFileAtomic, writeJsonAtomic } from '../store/atomic.js';
import { saveSafetensors } from '../store/safetensors.js';
import { lrSchedule } from './schedule.js';
import { trainingAugmentation, type TrainingHparams } from './hparams.js';
import type { MaskSchedule } from './mask-schedule.js';
import { iterationsPerEpoch, train, type EvalPoint, type TrainResult } from './train.js';

export interface TrainSummary {
  model: string;
  dataset: string;
  seed: number;
  steps: string;
  iterations: number;
  earlyStopIteration: number;
  earlyStopValLoss: number;
  earlyStopValAccuracy: number;
  earlyStopTestAccuracy: number;
  finalTestAccuracy: number;
  seconds: number;
  backend: string;
  /** The program that trained the model ('graph' or 'sparse_mlp'). */
  program: string;
  /** Training FLOPs as computed and for the dense network (nn/flops.ts). */
  flops: { actual: number; dense: number };
  /** Sparse training from scratch: what its mask schedule reports (method, density, updates...). */
  sparseTraining?: Record<string, unknown>;
}

/** Loads the run's data set (split by its seed), its samples shaped as the run's model takes them (MNIST as 1×28×28 images for a conv net). */
export function loadSplits(h: TrainingHparams): Splits {
  const splits = getDataset(h.dataset).load(h.dataDir, h.seed);
  const input = getModel(h.model, h.dataset).input;
  if (!input || input.join('x') === splits.train.sampleShape.join('x')) return splits;
  const shaped = (d: Dataset) => new Dataset(d.images, d.labels, input, d.numClasses, d.labelShape);
  return { name: splits.name, train: shaped(splits.train), validation: shaped(splits.validation), test: shaped(splits.test) };
}

export function budgetIterations(h: TrainingHparams, trainSize: number): number {
  return stepToIterations(parseStep(h.steps, '--steps'), iterationsPerEpoch(trainSize, h.batchSize));
}

export function summarize(h: TrainingHparams, iterations: number, r: TrainResult, context: RunContext): TrainSummary {
  return {
    model: h.model, dataset: h.dataset, seed: h.seed, steps: h.steps, iterations,
    earlyStopIteration: r.earlyStop.iteration,
    earlyStopValLoss: r.earlyStop.valLoss,
    earlyStopValAccuracy: r.earlyStop.valAccuracy,
    earlyStopTestAccuracy: r.earlyStop.testAccuracy,
    finalTestAccuracy: r.final.testAccuracy,
    seconds: r.seconds,
    backend: context.settings.backend,
    program: r.program,
    flops: { ...r.flops },
  };
}

/** metrics.csv: one row per (iteration, metric). */
export function metricsCsv(curve: readonly EvalPoint[]): string {
  const rows = ['iteration,name,value'];
  for (const p of curve) {
    rows.push(`${p.iteration},val_loss,${p.valLoss}`, `${p.iteration},val_accuracy,${p.valAccuracy}`,
      `${p.iteration},test_loss,${p.testLoss}`, `${p.iteration},test_accuracy,${p.testAccuracy}`);
  }
  return `${rows.join('\n')}\n`;
}

/** The model's parameters and buffers, with their shapes. */
export function saveModel(file: string, model: Model): void {
  saveSafetensors(file, new Map(model.namedTensors().map(([n, t]) => [n, { shape: t.shape, data: t.data }])));
}

export interface RunTrainingOptions {
  /** Writes hparams.json, metrics.csv, model_final.safetensors and summary.json here. */
  readonly out?: string;
  readonly onEval?: (point: EvalPoint, iterations: number) => void;
  /** The run settings; default: the active context. */
  readonly context?: RunContext;
  /** Asked during training: a reason stops it with a Stopped error (nothing is written). */
  readonly stopRequested?: () => string | null;
  /** Trains sparse from scratch: the starting masks and mask schedule for the freshly initialised model (src/dynamic/). */
  readonly sparse?: (model: Model, iterations: number) => SparseSetup;
}

/** A sparse training's start: its masks, the schedule that changes them, and what it reports at the end. */
export interface SparseSetup {
  readonly masks: ReadonlyMap<string, Float32Array>;
  readonly schedule: MaskSchedule;
  /** Its hyperparameters as given (method, density, rule, updates): recorded with the training's in hparams.json. */
  readonly hparams: Readonly<Record<string, unknown>>;
  report(): Record<string, unknown>;
}

/** Trains one dense model from scratch: `lth train`. */
export function runTraining(h: TrainingHparams, opts: RunTrainingOptions = {}): TrainSummary & { curve: EvalPoint[] } {
  const context = opts.context ?? activeContext();
  const data = loadSplits(h);
  const iterations = budgetIterations(h, data.train.length);
  const model = getModel(h.model, h.dataset).build();
  model.initialize(new Rng(h.seed, 'init'));
  const sparse = opts.sparse?.(model, iterations);
  const result = train({
    masks: sparse?.masks, maskSchedule: sparse?.schedule, augmentation: trainingAugmentation(h),
    model, data, iterations, batchSize: h.batchSize, seed: h.seed, evalEvery: h.evalEvery,
    optimizer: { name: h.optimizer, lr: h.lr, momentum: h.momentum, weightDecay: h.weightDecay },
    schedule: lrSchedule(h, iterationsPerEpoch(data.train.length, h.batchSize), iterations),
    onEval: (p) => opts.onEval?.(p, iterations), context, stopRequested: opts.stopRequested,
  });
  const summary: TrainSummary = { ...summarize(h, iterations, result, context), ...(sparse ? { sparseTraining: { ...sparse.report(), updateSeconds: result.maskUpdates?.seconds ?? 0 } } : {}) };
  if (opts.out) {
    writeJsonAtomic(path.join(opts.out, 'hparams.json'), sparse ? { ...h, sparseTrain: sparse.hparams } : h);
    writeFileAtomic(path.join(opts.out, 'metrics.csv'), metricsCsv(result.curve));
    saveModel(path.join(opts.out, 'model_final.safetensors'), model);
    if (result.masks) saveSafetensors(path.join(opts.out, 'mask_final.safetensors'), new Map([...result.masks].map(([n, m]) => [n, { shape: model.parameter(n).shape, data: m }])));
    writeJsonAtomic(path.join(opts.out, 'summary.json'), summary);
  }
  return { ...summary, curve: result.curve };
}
