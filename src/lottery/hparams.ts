import path from 'node:path';
import { LthError, check } from '../core/errors.js';
import { getModel } from '../models/registry.js';
import { canonical, hashOf, schemaValues, type Schema, type Values } from '../core/hparams.js';
import { formatStep, parseStep } from '../core/steps.js';
import { getStrategy, strategyNames } from '../pruning/registry.js';
import { checkStructured } from '../pruning/units.js';
import { TRAINING_SCHEMA, resolveTraining, trainingDefaults, type TrainingHparams } from '../training/hparams.js';
import { CHECKPOINT_EVERY_DEFAULT, parseCheckpointEvery } from '../training/checkpoint.js';
import type { BranchRun } from './branch.js';
import { controlNames, getBranch } from './branches.js';
import { pruningRates } from './rates.js';
import { EARLY_BIRD_EPSILON } from '../dynamic/early-bird.js';
import { SPARSE_UPDATE_SCHEMA, resolveSparseUpdate, type SparseUpdateHparams } from '../dynamic/hparams.js';

/** Lottery hyperparameters: training's, plus pruning and the experiment's shape. */
export const LOTTERY_SCHEMA = {
  ...TRAINING_SCHEMA,
  levels: { type: 'integer', help: 'pruning rounds (levels 1..L; level 0 is the dense network)', default: 20 },
  strategy: { type: 'string', help: `pruning strategy (${strategyNames().join(', ')}; default: the model's, magnitude_layerwise for most, magnitude_global for cifar_resnet/cifar_vgg)`, choices: strategyNames() },
  rate: { type: 'number', help: "per-round pruning rate of fully connected layers (output layer at half; conv layers keep the model's rate, except for cifar_resnet/cifar_vgg, where it is every layer's; default: the model's, 0.2)" },
  targetDensity: { type: 'number', help: 'derive the per-round rates so that the last level has exactly this fraction of weights left', flag: 'target-density', aliases: ['density'] },
  oneShot: { type: 'boolean', help: 'one-shot pruning: train, prune straight to --density, reset, train (same as --levels 1 --target-density D)', default: false },
  atInit: { type: 'boolean', help: `prune θ0 before any training, straight to each of --densities (one level per density), with a strategy that prunes at initialisation (${strategyNames().filter((n) => getStrategy(n).when === 'at_init').join(', ')})`, default: false },
  densities: { type: 'list', help: 'the weight densities of the --at-init levels, e.g. 0.5,0.2,0.07,0.036,0.019', default: [] },
  transferFrom: { type: 'string', help: "a lottery run directory whose tickets (each level's mask, with the run's θ0) are trained on this run's data set instead of pruning here" },
  rewindStep: { type: 'string', help: "reset survivors to their values at this step of the dense run ('0it' = θ0, the paper)", default: '0it' },
  earlyBird: { type: 'boolean', help: "early-bird tickets (You et al. 2020): each level's training stops once the mask the strategy would draw from its weights settles (see --early-bird-epsilon), and the next level prunes there; the last level trains its whole budget", default: false },
  earlyBirdEpsilon: { type: 'number', help: "with --early-bird: the ticket is drawn when consecutive masks differ in less than this share of the level's remaining weights (normalised Hamming distance)", default: EARLY_BIRD_EPSILON },
  earlyBirdEvery: { type: 'string', help: "with --early-bird: how often the mask is drawn while training ('1ep', '500it')", default: '1ep' },
  ...SPARSE_UPDATE_SCHEMA,
  ignore: { type: 'list', help: "layers global pruning leaves untouched, e.g. fc3.weight (default: the model's with a global strategy, fc.weight for cifar_resnet/cifar_vgg; else none)" },
  branches: { type: 'list', help: `controls trained at every pruned level: ${controlNames().join(', ')} (comma-separated; none by default)`, default: [] },
  replicates: { type: 'integer', help: 'independent replicates (replicate r uses seed + r)', default: 1 },
  root: { type: 'string', help: 'directory holding all runs', default: './lth-runs' },
  checkpointEvery: {
    type: 'string', default: CHECKPOINT_EVERY_DEFAULT,
    help: "checkpoint a stage's training (weights, optimiser state, curve so far; resumed after a kill, removed when the stage finishes) at a step ('1ep', '500it'), after a duration ('30s', '10min', '2h'), at the first step multiple after the duration ('1ep+10min'), or 'off'. How, not what: never changes the run's name or results",
  },
} as const satisfies Schema;

export interface LotteryHparams {
  training: TrainingHparams;
  levels: number;
  strategy: string;
  rate?: number;
  targetDensity?: number;
  oneShot: boolean;
  /** Prune θ0 straight to each of `densities` (level k to densities[k-1]) before any training. */
  atInit: boolean;
  densities: number[];
  /** A lottery run directory whose tickets (masks and θ0, replicate by replicate) this run trains. */
  transferFrom?: string;
  rewindStep: string;
  /** Early-bird tickets (--early-bird): the ε and how often masks are drawn; absent without. */
  earlyBird?: { epsilon: number; every: string };
  /** How the rigl and set branches drop and regrow connections. */
  sparseUpdate: SparseUpdateHparams;
  ignore: string[];
  branches: string[];
  replicates: number;
  root: string;
  /** When stages checkpoint their training (--checkpoint-every); not part of the run's identity. Absent in runs of older versions: the default. */
  checkpointEvery?: string;
}

/** Whether these branches train with drop/regrow updates (the rigl and set branches: --update-every and the rest apply). */
export function trainsSparse(branches: readonly string[]): boolean {
  return branches.some((b) => b === 'rigl' || b === 'set');
}

/** Checks every value before any work starts. */
export function resolveLottery(given: Values): LotteryHparams {
  const v = schemaValues(given, LOTTERY_SCHEMA, 'resolveLottery');
  const trainingValues: Values = {};
  for (const k of Object.keys(TRAINING_SCHEMA)) trainingValues[k] = v[k];
  const training = resolveTraining(trainingValues);
  const oneShot = v.oneShot === true, atInit = v.atInit === true;
  const pruningDefaults = getModel(training.model).pruning;
  const strategyName = String(v.strategy ?? pruningDefaults?.strategy ?? 'magnitude_layerwise');
  const densities = ((v.densities as string[] | undefined) ?? []).map((d) => {
    const x = Number(d);
    check(d.trim() !== '' && x > 0 && x < 1, `--densities: each must be a fraction in (0, 1), got '${d}'`);
    return x;
  });
  const h: LotteryHparams = {
    training,
    levels: oneShot ? 1 : atInit ? densities.length : Number(v.levels ?? LOTTERY_SCHEMA.levels.default),
    strategy: strategyName,
    rate: v.rate === undefined ? undefined : Number(v.rate),
    targetDensity: v.targetDensity === undefined ? undefined : Number(v.targetDensity),
    oneShot,
    atInit,
    densities,
    transferFrom: v.transferFrom === undefined ? undefined : String(v.transferFrom),
    rewindStep: String(v.rewindStep ?? LOTTERY_SCHEMA.rewindStep.default),
    earlyBird: v.earlyBird === true ? {
      epsilon: Number(v.earlyBirdEpsilon ?? LOTTERY_SCHEMA.earlyBirdEpsilon.default), every: String(v.earlyBirdEvery ?? LOTTERY_SCHEMA.earlyBirdEvery.default),
    } : undefined,
    sparseUpdate: resolveSparseUpdate(v, trainsSparse((v.branches as string[] | undefined) ?? []),
      'they set how the rigl and set branches update their masks; add --branches rigl or set'),
    // The model's ignored layers go with a global strategy (a layerwise one refuses --ignore).
    ignore: (v.ignore as string[] | undefined) ?? (getStrategy(strategyName).global ? [...pruningDefaults?.ignore ?? []] : []),
    branches: (v.branches as string[] | undefined) ?? [],
    replicates: Number(v.replicates ?? LOTTERY_SCHEMA.replicates.default),
    root: String(v.root ?? LOTTERY_SCHEMA.root.default),
    checkpointEvery: String(v.checkpointEvery ?? LOTTERY_SCHEMA.checkpointEvery.default),
  };
  check(!(oneShot && v.levels !== undefined && v.levels !== 1), `--one-shot prunes once: do not combine it with --levels ${v.levels}`);
  check(!oneShot || h.targetDensity !== undefined, '--one-shot needs --density D, the fraction of weights to keep (e.g. 0.2)');
  check(Number.isInteger(h.levels) && h.levels >= 0, `--levels must be a non-negative integer, got ${h.levels}`);
  const strategy = getStrategy(h.strategy);
  checkStructured(strategy, () => getModel(training.model, training.dataset).build());
  if (atInit) {
    check(densities.length > 0, '--at-init needs --densities, e.g. 0.5,0.2,0.07');
    check(strategy.when === 'at_init', `--at-init needs a strategy that prunes at initialisation (${strategyNames().filter((n) => getStrategy(n).when === 'at_init').join(', ')}); ${h.strategy} prunes trained weights`);
    check(v.levels === undefined && !oneShot && h.targetDensity === undefined && h.rate === undefined,
      '--at-init sets each level\'s density with --densities: do not combine it with --levels, --one-shot, --target-density or --rate');
  } else {
    check(densities.length === 0, '--densities gives the levels of --at-init: add --at-init, or use --target-density for iterative pruning');
  }
  if (h.rate !== undefined) check(h.rate > 0 && h.rate < 1, `--rate must be in (0, 1), got ${h.rate}`);
  if (h.targetDensity !== undefined) {
    check(h.targetDensity > 0 && h.targetDensity < 1, `--target-density must be in (0, 1), got ${h.targetDensity}`);
    check(h.levels >= 1, '--target-density needs --levels >= 1');
    check(h.rate === undefined, '--rate and --target-density both set the pruning rate; give one');
  }
  if (h.transferFrom !== undefined) {
    check(!atInit && !oneShot && h.targetDensity === undefined && h.rate === undefined && v.strategy === undefined,
      '--transfer-from takes its masks from the other run: do not combine it with --strategy, --at-init, --one-shot, --target-density or --rate');
  }
  if (h.ignore.length > 0) {
    const prunable = getModel(training.model, training.dataset).build().prunableNames();
    for (const n of h.ignore) check(prunable.includes(n), `--ignore: ${training.model} has no prunable weight '${n}' (it has ${prunable.join(', ')})`);
    check(strategy.global, `--ignore names layers a global strategy leaves untouched; it has no effect with --strategy ${h.strategy}`);
    check(prunable.some((n) => !h.ignore.includes(n)), `--ignore leaves no layer to prune: ${training.model}'s prunable weights are ${prunable.join(', ')}`);
  }
  const lowest = Math.min(...densities, h.targetDensity ?? 1);
  if (lowest < 1) {
    const weights = getModel(training.model, training.dataset).build().prunableLayers().reduce((a, l) => a + l.shape.reduce((x, y) => x * y, 1), 0);
    check(Math.floor(lowest * weights) >= 1, () => `${atInit ? '--densities' : '--target-density'} ${lowest} keeps no weight of ${training.model}'s ${weights.toLocaleString('en-US')} prunable weights`);
  }
  for (const b of h.branches) check(controlNames().includes(b), `--branches: unknown branch '${b}'. Known: ${controlNames().join(', ')}`);
  check(new Set(h.branches).size === h.branches.length, `--branches: a branch is named twice in '${h.branches.join(',')}'`);
  const run: BranchRun = { masks: atInit ? 'at_init' : h.transferFrom !== undefined ? 'transfer' : 'imp', model: getModel(training.model, training.dataset) };
  for (const b of h.branches) {
    const why = getBranch(b).refuses?.(run);
    if (why) throw new LthError(`--branches ${b}: ${why}`);
  }
  check(Number.isInteger(h.replicates) && h.replicates >= 1, `--replicates must be a positive integer, got ${h.replicates}`);
  parseStep(h.rewindStep, '--rewind-step'); // checked against the budget once the data set's size is known
  check(h.earlyBird !== undefined || (v.earlyBirdEpsilon === undefined && v.earlyBirdEvery === undefined),
    '--early-bird-epsilon and --early-bird-every set the early-bird search; add --early-bird');
  if (h.earlyBird) {
    check(!atInit && h.transferFrom === undefined, '--early-bird stops training once the pruned mask settles: levels pruned at initialisation (--at-init) or taken from another run (--transfer-from) train no network to prune');
    check(strategy.when !== 'at_init', `--early-bird stops training once the pruned mask settles: ${h.strategy} scores the weights at θ0, so its mask never changes as the network trains`);
    check(h.levels >= 1, '--early-bird needs at least one pruned level (--levels >= 1)');
    check(h.earlyBird.epsilon > 0 && h.earlyBird.epsilon < 1, `--early-bird-epsilon must be in (0, 1), got ${h.earlyBird.epsilon}`);
    parseStep(h.earlyBird.every, '--early-bird-every');
  }
  parseCheckpointEvery(h.checkpointEvery!);
  return h;
}

/**
 * What a run sets otherwise than its model's own defaults (its training flattened beside the
 * rest; the root and an unreadable record's fields left out): what `lth ls` and the report
 * show of a run. The run's identity, which names it, leaves out lth's global defaults
 * instead, so a VGG's own momentum appears there and a constant schedule does not.
 */
export function differsFromModelDefaults(h: LotteryHparams): Record<string, unknown> {
  let defaults: LotteryHparams;
  try {
    defaults = resolveLottery({ model: h.training.model, dataset: h.training.dataset });
  } catch (e) {
    if (!(e instanceof LthError)) throw e;
    return {};
  }
  const flat = (x: LotteryHparams): Record<string, unknown> => {
    const { training, root: _root, ...rest } = x;
    // Steps compared as one spelling ('0ep' is '0it').
    return { ...training, steps: oneWay(training.steps), warmupSteps: oneWay(training.warmupSteps), ...rest, rewindStep: oneWay(rest.rewindStep) };
  };
  const mine = flat(h), theirs = flat(defaults);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(mine).sort()) {
    if (mine[key] === undefined || JSON.stringify(mine[key]) === JSON.stringify(theirs[key])) continue;
    out[key] = mine[key];
  }
  return out;
}

/**
 * The fields that name a run. Left out: where things live (root, dataDir), how stages
 * are computed (checkpointEvery) and what only adds to a run without changing its
 * results (replicates, branches, and the number of levels unless a target density
 * derives the rates from it). A value that means what leaving it out means names no
 * other run: a --rate that gives the model's own rates is left out, and steps are
 * written one way ('0ep' and '0it' are both '0it').
 */
export function runIdentity(h: LotteryHparams): Record<string, unknown> {
  const t = h.training;
  return identityOf({
    ...h,
    training: {
      ...t, steps: oneWay(t.steps), warmupSteps: oneWay(t.warmupSteps),
      lrSchedule: t.lrSchedule?.startsWith('step:') ? `step:${t.lrSchedule.slice(5).split(',').map(oneWay).join(',')}` : t.lrSchedule,
    },
    rate: h.rate !== undefined && givesModelsRates(h) ? undefined : h.rate,
    rewindStep: oneWay(h.rewindStep),
    earlyBird: h.earlyBird && { ...h.earlyBird, every: oneWay(h.earlyBird.every) },
  });
}

/**
 * A step as formatStep writes it; a value that is not a step is left as it is (runIdentity
 * also reads the records of runs made by earlier builds, which may lack a field).
 */
function oneWay<T extends string | undefined>(s: T): T {
  if (s === undefined) return s;
  try {
    return formatStep(parseStep(s)) as T;
  } catch (e) {
    if (!(e instanceof LthError)) throw e;
    return s;
  }
}

/**
 * The fields as given, each value written as the user wrote it: what named runs before
 * runIdentity wrote every value one way. Such a run keeps its name (experimentOf).
 */
export function spelledRunIdentity(h: LotteryHparams): Record<string, unknown> {
  return identityOf(h);
}

function identityOf(h: LotteryHparams): Record<string, unknown> {
  const { dataDir: _dataDir, ...training } = h.training;
  const values: Values = {
    ...training, levels: h.targetDensity === undefined ? undefined : h.levels, strategy: h.strategy, rate: h.rate, targetDensity: h.targetDensity,
    oneShot: h.oneShot, atInit: h.atInit, densities: h.densities.map(String), rewindStep: h.rewindStep, ignore: h.ignore,
    earlyBird: h.earlyBird !== undefined, earlyBirdEpsilon: h.earlyBird?.epsilon, earlyBirdEvery: h.earlyBird?.every,
    // The rigl and set branches' results depend on these; other stages ignore them.
    updateEvery: h.sparseUpdate.updateEvery, dropFraction: h.sparseUpdate.dropFraction, updateEnd: h.sparseUpdate.updateEnd,
    // The source run by its name (its hash), not by where it lies.
    transferFrom: h.transferFrom === undefined ? undefined : path.basename(path.resolve(h.transferFrom)),
  };
  const defaults: Values = {
    ...trainingDefaults(h.training.model), levels: undefined, strategy: 'magnitude_layerwise', oneShot: false, atInit: false, densities: [], rewindStep: '0it', ignore: [],
    earlyBird: false, earlyBirdEpsilon: undefined, earlyBirdEvery: undefined,
    updateEvery: SPARSE_UPDATE_SCHEMA.updateEvery.default, dropFraction: SPARSE_UPDATE_SCHEMA.dropFraction.default, updateEnd: SPARSE_UPDATE_SCHEMA.updateEnd.default,
  };
  return canonical(values, defaults);
}

/** Whether h's --rate sets every layer's rate to what the model's own rates are (by model, data set and rate, computed once). */
function givesModelsRates(h: LotteryHparams): boolean {
  const key = `${h.training.model} ${h.training.dataset} ${h.rate}`;
  let same = givesModelsRatesCache.get(key);
  if (same === undefined) {
    const model = getModel(h.training.model, h.training.dataset).build();
    const given = pruningRates({ ...h, targetDensity: undefined }, model), own = pruningRates({ ...h, rate: undefined, targetDensity: undefined }, model);
    same = given.size === own.size && [...own].every(([n, r]) => given.get(n) === r);
    givesModelsRatesCache.set(key, same);
  }
  return same;
}
const givesModelsRatesCache = new Map<string, boolean>();

export function runHash(h: LotteryHparams): string {
  return hashOf(runIdentity(h));
}
