import { check } from '../core/errors.js';
import { schemaValues, type Schema, type Values } from '../core/hparams.js';
import { parseStep } from '../core/steps.js';
import { AUGMENTATIONS, augmentationFor, type Augmentation, type AugmentationName } from '../data/augment.js';
import { getDataset } from '../data/registry.js';
import { getModel, modelNames } from '../models/registry.js';
import { lrSchedule } from './schedule.js';

/** Hyperparameters of one training run; model-specific defaults come from the model registry. */
export const TRAINING_SCHEMA = {
  model: { type: 'string', help: `model name (${modelNames().join(', ')})`, default: 'lenet_300_100' },
  dataset: { type: 'string', help: "data set (default: the model's, e.g. mnist for lenet_300_100)" },
  dataDir: { type: 'string', help: "directory with the data set's files (default: the data set's own: mnist, spam, moby_dick and sensor are embedded, fashion_mnist is read from /usr/share/datasets/fashion-mnist, cifar10 has none)" },
  steps: { type: 'string', help: "training budget, e.g. 50000it, 40ep, 2ep100it (default: the model's)" },
  batchSize: { type: 'integer', help: "minibatch size (default: the model's, 60 in the paper)" },
  optimizer: { type: 'string', help: "adam or sgd (default: the model's)", choices: ['adam', 'sgd'] },
  lr: { type: 'number', help: "learning rate (default: the model's, e.g. 1.2e-3 for lenet_300_100)" },
  momentum: { type: 'number', help: "SGD momentum (default: the model's with SGD, 0.9 for cifar_resnet/cifar_vgg; else 0)" },
  weightDecay: { type: 'number', help: "SGD weight decay (default: the model's with SGD, e.g. 1e-4 for cifar_resnet; else 0)" },
  lrSchedule: { type: 'string', help: "learning-rate schedule: constant, cosine (to 0 at the end), or step:MILESTONES (e.g. step:80ep,120ep, times --lr-gamma at each) (default: the model's, constant for most)" },
  lrGamma: { type: 'number', help: "factor of a step schedule at each milestone (default: the model's, 0.1)" },
  warmupSteps: { type: 'string', help: 'linear learning-rate warmup over this many steps (e.g. 2ep, 500it)', default: '0it' },
  augment: { type: 'string', help: 'training-data augmentation: none, or crop_flip (4-pixel black padding, a random crop, a horizontal flip half of the time; image data sets), seeded by (seed, epoch)', choices: AUGMENTATIONS, default: 'none' },
  seed: { type: 'integer', help: 'seed of initialisation, data split and data order', default: 0 },
  evalEvery: { type: 'integer', help: 'evaluate validation and test every N iterations', default: 100 },
} as const satisfies Schema;

export interface TrainingHparams {
  model: string;
  dataset: string;
  dataDir?: string;
  steps: string;
  batchSize: number;
  optimizer: 'adam' | 'sgd';
  lr: number;
  momentum: number;
  weightDecay: number;
  lrSchedule: string;
  lrGamma: number;
  warmupSteps: string;
  /** Training-data augmentation (data/augment.ts); absent in runs of older versions: 'none'. */
  augment?: AugmentationName;
  seed: number;
  evalEvery: number;
}

/** Fills model defaults in and checks every value before any work starts. */
export function resolveTraining(given: Values): TrainingHparams {
  const v = schemaValues(given, TRAINING_SCHEMA, 'resolveTraining');
  const spec = getModel(String(v.model ?? TRAINING_SCHEMA.model.default));
  const d = spec.training;
  const optimizer = (v.optimizer ?? d.optimizer) as 'adam' | 'sgd';
  // The model's momentum and weight decay are its SGD's: another optimiser starts from none.
  const sgd = optimizer === 'sgd' && d.optimizer === 'sgd';
  const h: TrainingHparams = {
    model: spec.name,
    dataset: String(v.dataset ?? d.dataset),
    dataDir: v.dataDir === undefined ? undefined : String(v.dataDir),
    steps: String(v.steps ?? d.steps),
    batchSize: Number(v.batchSize ?? d.batchSize),
    optimizer,
    lr: Number(v.lr ?? d.lr),
    momentum: Number(v.momentum ?? (sgd ? d.momentum : undefined) ?? 0),
    weightDecay: Number(v.weightDecay ?? (sgd ? d.weightDecay : undefined) ?? 0),
    lrSchedule: String(v.lrSchedule ?? d.lrSchedule ?? 'constant'),
    lrGamma: Number(v.lrGamma ?? d.lrGamma ?? 0.1),
    warmupSteps: String(v.warmupSteps ?? TRAINING_SCHEMA.warmupSteps.default),
    augment: String(v.augment ?? TRAINING_SCHEMA.augment.default) as AugmentationName,
    seed: Number(v.seed ?? TRAINING_SCHEMA.seed.default),
    evalEvery: Number(v.evalEvery ?? TRAINING_SCHEMA.evalEvery.default),
  };
  augmentationFor(h.augment!, getDataset(h.dataset));
  getModel(h.model, h.dataset); // the model fits the data set's samples, before any data loads
  const steps = parseStep(h.steps, '--steps');
  check(steps.epochs > 0 || steps.iterations > 0, `--steps must be at least one iteration, got '${h.steps}'`);
  check(h.optimizer === 'adam' || h.optimizer === 'sgd', `--optimizer: expected adam or sgd, got '${h.optimizer}'`);
  check(Number.isInteger(h.batchSize) && h.batchSize >= 1, `--batch-size must be a positive integer, got ${h.batchSize}`);
  check(h.lr > 0 && Number.isFinite(h.lr), `--lr must be a positive number, got ${h.lr}`);
  check(h.momentum >= 0 && h.momentum < 1, `--momentum must be in [0, 1), got ${h.momentum}`);
  check(h.weightDecay >= 0, `--weight-decay must be >= 0, got ${h.weightDecay}`);
  // The schedule's form now; its milestones against the budget once the data set's size is known.
  lrSchedule(h, 1, Number.MAX_SAFE_INTEGER);
  check(v.lrGamma === undefined || h.lrSchedule.startsWith('step:'), `--lr-gamma applies to a step schedule (--lr-schedule step:MILESTONES); it has no effect with --lr-schedule ${h.lrSchedule}`);
  check(h.optimizer === 'sgd' || (v.momentum === undefined && v.weightDecay === undefined), `--momentum and --weight-decay are SGD's; they have no effect with --optimizer ${h.optimizer}`);
  check(Number.isInteger(h.seed) && h.seed >= 0 && h.seed <= 0xffffffff, `--seed must be an integer in [0, 4294967295], got ${h.seed}`);
  check(Number.isInteger(h.evalEvery) && h.evalEvery >= 1, `--eval-every must be a positive integer, got ${h.evalEvery}`);
  return h;
}

/** The defaults a resolved run is compared against for its canonical form. */
export function trainingDefaults(model: string): Values {
  const d = getModel(model).training;
  return {
    model: TRAINING_SCHEMA.model.default, dataset: d.dataset, steps: d.steps, batchSize: d.batchSize,
    optimizer: d.optimizer, lr: d.lr, momentum: 0, weightDecay: 0, seed: 0, evalEvery: 100,
    lrSchedule: 'constant', lrGamma: 0.1, warmupSteps: '0it', augment: 'none',
  };
}

/** The run's training-data augmentation, if any. */
export function trainingAugmentation(h: TrainingHparams): Augmentation | undefined {
  return augmentationFor(h.augment ?? 'none', getDataset(h.dataset));
}
