import fs from 'node:fs';
import path from 'node:path';
import { describeSettings, type RunContext } from '../backend/index.js';
import { LthError, Stopped, check } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { parseStep, stepToIterations } from '../core/steps.js';
import { LTH_VERSION } from '../core/version.js';
import type { Splits } from '../data/dataset.js';
import { getModel, type ModelSpec } from '../models/registry.js';
import type { Model, StateDict } from '../nn/model.js';
import { stateNames } from '../nn/optim.js';
import { countOnes, onesMask, type Mask } from '../pruning/mask.js';
import { getStrategy } from '../pruning/registry.js';
import type { PruningContext } from '../pruning/strategy.js';
import { sha256File, writeFileAtomic, writeJsonAtomic } from '../store/atomic.js';
import { FILES, readDone, sealDone, stageChecksums, stagePath, verifyStage, type StageResult } from '../store/layout.js';
import { loadSafetensors, saveSafetensors } from '../store/safetensors.js';
import { CHECKPOINT_EVERY_DEFAULT, CHECKPOINT_JSON, isCheckpointFile, parseCheckpointEvery, readCheckpoint, removeCheckpoint, writeCheckpoint, type CheckpointIdentity, type TrainCheckpoint } from '../training/checkpoint.js';
import { metricsCsv } from '../training/run.js';
import { lrSchedule } from '../training/schedule.js';
import { trainingAugmentation } from '../training/hparams.js';
import { iterationsPerEpoch, train, type EvalPoint } from '../training/train.js';
import { buildModel } from '../nn/build.js';
import { checkSparseUpdates } from '../dynamic/hparams.js';
import { compileProgram } from '../program/compile.js';
import { widthsForWeights } from '../models/resize.js';
import type { StageStart } from './branch.js';
import { MAIN, getBranch } from './branches.js';
import { runIdentity, spelledRunIdentity, trainsSparse, type LotteryHparams } from './hparams.js';
import { hashOf } from '../core/hparams.js';
import type { StageSpec } from './plan.js';
import { pruningRates } from './rates.js';
import { ratesForTarget } from '../pruning/rates.js';
import { EarlyBird } from '../dynamic/early-bird.js';
import { SPARSE_UPDATE_DEFAULTS } from '../dynamic/hparams.js';
import { sparseSchedule } from '../dynamic/setup.js';

/** A lottery experiment as stages see it: its hyperparameters and where its run lives. */
export interface Experiment {
  readonly h: LotteryHparams;
  readonly runDir: string;
  /** The canonical hyperparameters that name the run. */
  readonly identity: Record<string, unknown>;
}

/**
 * The experiment of h: its run is <root>/<runHash>, unless that does not exist and the
 * directory named by h's values as spelled does (spelledRunIdentity: a run an older
 * version named, e.g. with a default given explicitly), which is then resumed under its
 * name rather than made again.
 */
export function experimentOf(h: LotteryHparams): Experiment {
  const identity = runIdentity(h), runDir = path.join(h.root, hashOf(identity));
  if (!fs.existsSync(runDir)) {
    const spelled = spelledRunIdentity(h), named = path.join(h.root, hashOf(spelled));
    if (named !== runDir && fs.existsSync(path.join(named, FILES.hparams))) return { h, runDir: named, identity: spelled };
  }
  return { h, runDir, identity };
}

export interface LotteryProgress {
  replicate: number;
  level: number;
  stage: string;
  density: number;
  point: EvalPoint;
  iterations: number;
}

export interface StageOptions {
  readonly context: RunContext;
  /** The data set split by a replicate's seed (an executor keeps them loaded). */
  readonly splits: (seed: number) => Splits;
  readonly onProgress?: (p: LotteryProgress) => void;
  /**
   * Asked before and during training: a reason stops the stage (unfinished) with a Stopped
   * error, after a checkpoint of where its training got to (unless --checkpoint-every off).
   */
  readonly stopRequested?: () => string | null;
  /**
   * Writes the finished stage's done.json, the stage's commit (default: atomically, here);
   * a distributed worker commits it itself, once, while it holds the stage's job.
   */
  readonly commit?: (file: string, done: StageResult) => void;
  /**
   * Told what a user should know about a stage as it runs: it resumes from its checkpoint,
   * ignores one made under other settings (`warning`), or its mask leaves a layer without a
   * weight (`warning`). Default: a line on stderr ('lth: ...' or 'lth: warning: ...').
   */
  readonly onNotice?: (message: string, warning: boolean) => void;
}

/** The training budget and the rewind step in iterations, checked against each other and the learning-rate schedule. */
export function budget(h: LotteryHparams, trainSize: number): { iterations: number; rewindAt: number } {
  const perEpoch = iterationsPerEpoch(trainSize, h.training.batchSize);
  const iterations = stepToIterations(parseStep(h.training.steps, '--steps'), perEpoch);
  const rewindAt = stepToIterations(parseStep(h.rewindStep, '--rewind-step'), perEpoch);
  check(rewindAt < iterations, `--rewind-step ${h.rewindStep} (${rewindAt} iterations) must be before the end of the training budget ${h.training.steps} (${iterations} iterations)`);
  lrSchedule(h.training, perEpoch, iterations);
  if (trainsSparse(h.branches)) checkSparseUpdates(h.sparseUpdate, iterations);
  if (h.earlyBird) {
    // The search compares each draw with the one before: two must fall within the budget.
    const every = stepToIterations(parseStep(h.earlyBird.every, '--early-bird-every'), perEpoch);
    check(every >= 1, `--early-bird-every ${h.earlyBird.every} is less than one iteration`);
    const second = (Math.floor(rewindAt / every) + 2) * every;
    check(second < iterations, `--early-bird-every ${h.earlyBird.every} (${every} iterations) draws fewer than two masks after the rewind step in the ${iterations}-iteration budget, `
      + 'so the search could never stop training: lower it, or raise --steps');
  }
  return { iterations, rewindAt };
}

/**
 * Runs one stage of a lottery experiment against the store, the only code that trains one:
 * unless its done.json exists (then it returns that, skipped), it computes where the stage
 * starts — level 0 from θ0; a pruned level from the strategy's mask of level k-1's trained
 * weights, then its branch's weights and mask — trains, and writes its files, done.json
 * last. Its dependencies must be finished. The same stage gives the same bytes whoever
 * runs it and in whatever order. Its training checkpoints itself (--checkpoint-every, see
 * training/checkpoint.ts) into its directory until done.json is written: a stage
 * interrupted after a checkpoint resumes from it to the same bytes.
 */
export function runStage(exp: Experiment, spec: StageSpec, opts: StageOptions): { result: StageResult; skipped: boolean } {
  const { h, runDir } = exp;
  const dir = path.join(runDir, spec.id);
  const existing = readDone(dir);
  if (existing) {
    checkWhole(exp, spec.id, existing);
    // A checkpoint left by a process killed between done.json and its removal.
    if (fs.existsSync(path.join(dir, CHECKPOINT_JSON))) removeCheckpoint(dir);
    return { result: existing, skipped: true };
  }
  const stop = opts.stopRequested?.();
  if (stop) throw new Stopped(stop);
  for (const dep of spec.deps) {
    const done = readDone(path.join(runDir, dep));
    if (!done) throw new LthError(`stage ${spec.id} needs ${dep}, which is not finished`);
    checkWhole(exp, dep, done);
  }
  const { replicate: r, seed, level } = spec;
  const splits = opts.splits(seed);
  const { iterations, rewindAt } = budget(h, splits.train.length);
  const modelSpec = getModel(h.training.model, h.training.dataset);
  const model = modelSpec.build();
  const source = h.transferFrom === undefined ? null : path.resolve(h.transferFrom);
  const theta0 = source ? transferred(source, stagePath(r, 0, MAIN), FILES.init, model) : initialState(modelSpec, seed);
  const branch = getBranch(spec.branch);
  let start: StageStart;
  if (level === 0) {
    start = { init: theta0, mask: onesMask(theta0, model.prunableNames()) };
  } else {
    const prev = path.join(runDir, stagePath(r, level - 1, MAIN));
    const trained = h.atInit || source ? null : loadState(path.join(prev, FILES.final));
    const prune = (invert: boolean): Mask => {
      if (source) throw new Error(`${spec.branch}: a transferred level has no pruning of this run (Branch.refuses lets no such run start)`);
      const current = trained ? loadState(path.join(prev, FILES.mask)) : onesMask(theta0, model.prunableNames());
      return pruneLevel(exp, modelSpec, model, spec, theta0, trained, current, splits, invert);
    };
    const levelMask = source ? transferred(source, stagePath(r, level, MAIN), FILES.mask, model) : prune(false);
    const rewind = rewindAt > 0 ? loadState(path.join(runDir, stagePath(r, 0, MAIN), FILES.rewind)) : theta0;
    start = branch.start({
      level, seed, levelMask, rewind, trained,
      freshInit: (stream) => initialState(modelSpec, seed, new Rng(seed, stream, level)),
      rng: (stream) => new Rng(seed, stream, level),
      pruneInverted: () => prune(true),
      smallDense: (weights, stream) => {
        const small = modelSpec.withWidths!(widthsForWeights(modelSpec, weights).widths);
        small.initialize(new Rng(seed, stream, level));
        return { model: small, init: small.state() };
      },
    });
  }
  const net = start.model ?? model;
  net.loadState(start.init, `stage ${spec.id}: starting weights`);
  // Density against the run's model, so that a smaller network is placed by its weights.
  const maskDensity = countAll(start.mask) / prunableSize(model);
  const pruned = [...start.mask.values()].some((m) => countOnes(m) < m.length);
  const shapes = net.shapes();
  saveTensors(path.join(dir, FILES.mask), start.mask, shapes);
  saveTensors(path.join(dir, FILES.init), net.state(), shapes);
  const schedule = lrSchedule(h.training, iterationsPerEpoch(splits.train.length, h.training.batchSize), iterations);
  const final = schedule.lrAt(iterations - 1);
  const startAt = level === 0 || start.from === 'start' ? 0 : rewindAt;
  const optimizer = { name: h.training.optimizer, lr: h.training.lr, momentum: h.training.momentum, weightDecay: h.training.weightDecay };
  // Checkpoints of the stage's training (not of a branch's further trainings): resumed when
  // made for exactly this stage, its starting files and run settings.
  const every = parseCheckpointEvery(h.checkpointEvery ?? CHECKPOINT_EVERY_DEFAULT);
  const identity: CheckpointIdentity = {
    stage: spec.id, run: path.basename(runDir), iterations, startAt, lth: LTH_VERSION, numerics: describeSettings(opts.context.settings),
    start: { [FILES.mask]: sha256File(path.join(dir, FILES.mask)), [FILES.init]: sha256File(path.join(dir, FILES.init)) },
  };
  const params = net.namedParameters().map(([n, t]) => [n, t.size] as const);
  const found = readCheckpoint(dir, identity, {
    weights: new Map(net.namedTensors().map(([n, t]) => [n, t.size])),
    optimizer: new Map(params.flatMap(([n, size]) => stateNames(optimizer).map((k) => [`${n}.${k}`, size] as [string, number]))),
  });
  const notice = opts.onNotice ?? ((m, warning) => process.stderr.write(`lth: ${warning ? 'warning: ' : ''}${m}\n`));
  // Layer collapse (a global strategy, SNIP most often, removing every weight of a layer):
  // legitimate to study, but the network's output then no longer depends on its input.
  const emptied = [...start.mask].filter(([, m]) => m.length > 0 && countOnes(m) === 0).map(([n]) => n);
  if (emptied.length) notice(`stage ${spec.id}: its mask keeps no weight of ${emptied.join(', ')} (layer collapse): the network's output no longer depends on its input`, true);
  // Rates solved for weights remove more weights when applied to whole units (each takes its
  // weights in and out): said where the last level lands well below the density asked for.
  if (spec.branch === MAIN && level === h.levels && h.targetDensity !== undefined && getStrategy(h.strategy).structure !== 'unstructured' && maskDensity < 0.8 * h.targetDensity) {
    notice(`stage ${spec.id}: keeps ${(100 * maskDensity).toPrecision(3)}% of the weights, against the ${(100 * h.targetDensity).toPrecision(3)}% asked for: ${h.strategy} removes whole units, `
      + 'and each takes its weights in and out with it (the rates are solved for weights)', true);
  }
  let resume: TrainCheckpoint | undefined;
  if (found.kind === 'ignored') {
    notice(`stage ${spec.id}: its checkpoint is ignored and the stage trains from its start, since ${found.reason}; to resume it instead, stop now and run with the settings it was made with`, true);
  } else if (found.kind === 'resume') {
    resume = found.checkpoint;
    notice(`stage ${spec.id}: resuming from its checkpoint at iteration ${resume.iteration} of ${iterations}`, false);
  }
  // What changes the stage's mask as it trains: dynamic sparse training (the rigl and set
  // branches) or the early-bird search of a ticket's next mask (--early-bird; not at the last level).
  const update = h.sparseUpdate ?? SPARSE_UPDATE_DEFAULTS;
  const dynamic = start.sparseTrain ? sparseSchedule(start.sparseTrain, update, iterations, seed, opts.context.backend) : null;
  const earlyBird = h.earlyBird && spec.branch === MAIN && level < h.levels ? new EarlyBird({
    every: stepToIterations(parseStep(h.earlyBird.every, '--early-bird-every'), iterationsPerEpoch(splits.train.length, h.training.batchSize)),
    epsilon: h.earlyBird.epsilon, after: rewindAt,
    draw: (weights) => pruneLevel(exp, modelSpec, model, { ...spec, level: level + 1 }, theta0, weights, start.mask, splits, false),
    within: start.mask,
  }) : null;
  const fit = (target: Model, orderSeed: number, keepStateAt?: number, onEval?: (point: EvalPoint) => void, checkpointed = false) => train({
    // A stage with nothing pruned (level 0, a small dense network) trains without masks.
    model: target, masks: pruned ? start.mask : undefined, data: splits, iterations, startAt, batchSize: h.training.batchSize, seed: orderSeed, evalEvery: h.training.evalEvery,
    schedule: start.lr === 'final' ? { lrAt: () => final, nextChange: () => Infinity } : schedule,
    optimizer, onEval, keepStateAt, context: opts.context, stopRequested: opts.stopRequested, augmentation: trainingAugmentation(h.training),
    maskSchedule: checkpointed ? (dynamic ?? earlyBird ?? undefined) : undefined,
    checkpoints: checkpointed ? {
      every, resume, save: (cp) => writeCheckpoint(dir, identity, cp, shapes),
      // A branch that trains again after (its analysis) resumes that from the end of this training.
      atEnd: branch.analyse !== undefined,
    } : undefined,
  });
  const result = fit(net, seed, spec.keepRewind ? rewindAt : undefined,
    (point) => opts.onProgress?.({ replicate: r, level, stage: spec.branch, density: maskDensity, point, iterations }), true);
  if (result.keptState) saveTensors(path.join(dir, FILES.rewind), result.keptState, shapes);
  saveTensors(path.join(dir, FILES.final), net.state(), shapes);
  if (dynamic && result.masks) saveTensors(path.join(dir, FILES.finalMask), result.masks, shapes);
  // What the analysis trains again counts in the stage's cost (the stability branch trains two copies).
  const cost = { seconds: result.seconds, actual: result.flops.actual, dense: result.flops.dense };
  const analysis = branch.analyse?.({
    seed, start, trained: net.state(),
    retrain: (orderSeed, what) => {
      const copy = buildModel(net.describe());
      copy.loadState(start.init, `stage ${spec.id}: starting weights`);
      const again = fit(copy, orderSeed, undefined, (point) => opts.onProgress?.({ replicate: r, level, stage: `${spec.branch} (${what})`, density: maskDensity, point, iterations }));
      cost.seconds += again.seconds;
      cost.actual += again.flops.actual;
      cost.dense += again.flops.dense;
      return copy.state();
    },
    test: (state) => {
      const program = compileProgram(buildModel(net.describe()), { masks: pruned ? start.mask : undefined, optimizer: null, context: opts.context, sampleShape: splits.test.sampleShape });
      program.load(state);
      return program.evaluate(splits.test);
    },
  });
  writeFileAtomic(path.join(dir, FILES.metrics), metricsCsv(result.curve));
  writeJsonAtomic(path.join(dir, FILES.hparams), { ...exp.identity, replicate: r, seed, level, stage: spec.branch });
  const done: StageResult = {
    replicate: r, level, stage: spec.branch, density: maskDensity, iterations,
    earlyStopIteration: result.earlyStop.iteration, earlyStopValLoss: result.earlyStop.valLoss,
    earlyStopValAccuracy: result.earlyStop.valAccuracy, earlyStopTestAccuracy: result.earlyStop.testAccuracy,
    finalTestAccuracy: result.final.testAccuracy, seconds: cost.seconds, backend: opts.context.settings.backend,
    program: result.program, numerics: describeSettings(opts.context.settings), lth: LTH_VERSION,
    files: Object.fromEntries(Object.entries(stageChecksums(dir)).filter(([name]) => !isCheckpointFile(name))), ...(analysis ? { analysis } : {}),
    flops: { actual: cost.actual, dense: cost.dense },
    ...(earlyBird ? { earlyBird: { epsilon: earlyBird.settings.epsilon, every: earlyBird.settings.every, drawnAt: earlyBird.drawnAt, points: [...earlyBird.points] } } : {}),
    ...(dynamic ? { sparseTraining: { method: dynamic.settings.method, updates: dynamic.updates, regrown: dynamic.regrown, updateSeconds: result.maskUpdates?.seconds ?? 0 } } : {}),
  };
  const sealed = sealDone(done);
  (opts.commit ?? writeJsonAtomic)(path.join(dir, FILES.done), sealed);
  // Once the stage is committed its checkpoint has served. (A caller that commits done.json
  // later, itself, removes it then: removeCheckpoint; a stage found done drops one left over.)
  if (fs.existsSync(path.join(dir, FILES.done))) removeCheckpoint(dir);
  return { result: sealed, skipped: false };
}

/**
 * A file of a finished stage of the --transfer-from run, checked whole and against this
 * run's model: every tensor of a weight file, or every prunable weight of a mask file,
 * with this model's sizes.
 */
export function transferred(sourceRun: string, id: string, file: string, model: Model): StateDict {
  const dir = path.join(sourceRun, id);
  const done = readDone(dir);
  if (!done) throw new LthError(`--transfer-from: ${dir} is not a finished stage (the source run needs every level this run trains; --levels sets how many)`);
  const problems = verifyStage(dir, done);
  if (problems.length) throw new LthError(`--transfer-from: ${problems.join('; ')}`);
  const state = loadState(path.join(dir, file));
  const sizes = new Map(model.namedTensors().map(([n, t]) => [n, t.size]));
  const wanted = file === FILES.mask ? model.prunableNames() : [...sizes.keys()];
  for (const n of wanted) {
    const t = state.get(n);
    if (!t) throw new LthError(`--transfer-from: ${path.join(dir, file)} has no '${n}': the source run's model is not ${model.name}`);
    if (t.length !== sizes.get(n)) throw new LthError(`--transfer-from: '${n}' in ${path.join(dir, file)} has ${t.length} entries, ${model.name} here has ${sizes.get(n)}: the tickets do not fit this model`);
  }
  return new Map(wanted.map((n) => [n, state.get(n)!]));
}

/** A finished stage's files as they were when it finished, or an LthError saying what is damaged and how to redo it. */
function checkWhole(exp: Experiment, id: string, done: StageResult): void {
  const problems = verifyStage(path.join(exp.runDir, id), done);
  if (problems.length) {
    throw new LthError(`finished stage ${id} is damaged: ${problems.join('; ')}. 'lth verify ${exp.runDir} --repair' redoes it and the stages after it`);
  }
}

/** θ0 of a replicate: the model's initialisation drawn from (seed, 'init'), or from `rng`. */
function initialState(spec: ModelSpec, seed: number, rng = new Rng(seed, 'init')): StateDict {
  const m = spec.build();
  m.initialize(rng);
  return m.state();
}

/**
 * The mask of pruned level k: the run's strategy applied to level k-1's ticket (its trained
 * weights and mask), or with --at-init to θ0 and the full mask, to the level's density
 * (`template`: the architecture, its values unused).
 */
function pruneLevel(
  exp: Experiment, modelSpec: ModelSpec, template: Model, spec: StageSpec, theta0: StateDict, trained: StateDict | null, mask: Mask, splits: Splits, invert: boolean,
): Mask {
  const { h } = exp;
  const prunable = new Set(template.prunableNames());
  const current: Mask = new Map([...mask].filter(([n]) => prunable.has(n)));
  const sampler = new Rng(spec.seed, 'prune_data', spec.level);
  const strategy = getStrategy(h.strategy);
  const targetDensity = h.atInit ? h.densities[spec.level - 1] : undefined;
  const ctx: PruningContext = {
    // A strategy that runs at initialisation never sees trained weights.
    layers: template.prunableLayers(), theta0, trained: strategy.when === 'at_init' ? null : trained, mask: current,
    rates: targetDensity === undefined ? pruningRates(h, template) : atDensity(h, template, targetDensity), targetDensity, ignore: h.ignore,
    rng: new Rng(spec.seed, 'prune', spec.level),
    invert,
    model: () => modelSpec.build(),
    sample: (batchSize) => {
      const train = splits.train, n = Math.min(batchSize, train.length);
      const order = sampler.permutation(train.length).subarray(0, n);
      const x = new Float32Array(n * train.sampleSize), labels = new Int32Array(n * train.labelSize);
      train.gather(order, 0, n, x, labels);
      return { x, labels, shape: [n, ...train.sampleShape] };
    },
  };
  return strategy.prune(ctx);
}

/** The model's rates scaled (keeping their ratios) to reach `density` in one round. */
function atDensity(h: LotteryHparams, model: Model, density: number): Map<string, number> {
  const sizes = new Map(model.namedParameters().map(([n, t]) => [n, t.size]));
  return ratesForTarget(pruningRates(h, model), sizes, density, 1);
}

function countAll(mask: Mask): number {
  let n = 0;
  for (const m of mask.values()) n += countOnes(m);
  return n;
}

function prunableSize(model: Model): number {
  const sizes = new Map(model.namedParameters().map(([n, t]) => [n, t.size]));
  return model.prunableNames().reduce((a, n) => a + sizes.get(n)!, 0);
}

function loadState(file: string): StateDict {
  return new Map([...loadSafetensors(file)].map(([n, t]) => [n, t.data]));
}

/** Writes tensors with their shapes (a tensor the shapes do not name is written flat). */
function saveTensors(file: string, tensors: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): void {
  saveSafetensors(file, new Map([...tensors].map(([n, data]) => [n, { shape: shapes.get(n) ?? [data.length], data }])));
}
