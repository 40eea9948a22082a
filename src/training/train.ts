import { activeContext, type RunContext } from '../backend/index.js';
import { LthError, Stopped, check } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Dataset, Splits } from '../data/dataset.js';
import type { Model, StateDict } from '../nn/model.js';
import type { OptimizerSettings } from '../nn/optim.js';
import { AugmentedEpoch, type Augmentation } from '../data/augment.js';
import { buildModel, unknownModuleTypes } from '../nn/build.js';
import { maskDensities, stepFlops, weightMacs, type StepFlops } from '../nn/flops.js';
import { compileProgram, withMasks } from '../program/compile.js';
import type { Program, ProgramKind } from '../program/program.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { BufferArena, Tensor } from '../tensor/tensor.js';
import { BackgroundEvaluator } from './background-eval.js';
import { CheckpointSchedule, type CheckpointEvery, type TrainCheckpoint } from './checkpoint.js';
import { earlyStopPoint, type EvalPoint } from './curve.js';
import type { LiveTraining, MaskSchedule } from './mask-schedule.js';
import type { LrSchedule } from './schedule.js';

export { earlyStopPoint, type EvalPoint } from './curve.js';

export type { OptimizerSettings } from '../nn/optim.js';

export interface TrainOptions {
  readonly model: Model;
  /** Masks of prunable weights (1 keep, 0 pruned), held through training; pruned weights are set to zero first. */
  readonly masks?: ReadonlyMap<string, Float32Array>;
  readonly data: Splits;
  /** The iteration training ends at (minibatches from the start of the schedule). */
  readonly iterations: number;
  /**
   * The iteration training starts at (default 0): a network reset to a rewind step goes on
   * from there, with the data order and learning rate of those iterations; evaluation
   * points keep their absolute iteration numbers.
   */
  readonly startAt?: number;
  /** The learning rate per iteration (default: optimizer.lr throughout). */
  readonly schedule?: LrSchedule;
  readonly batchSize: number;
  readonly optimizer: OptimizerSettings;
  /** Seeds the data order: epoch e is a permutation drawn from stream ('data', e); also dropout's masks. */
  readonly seed: number;
  /** Evaluate validation and test every this many iterations (and at 0 and the end). */
  readonly evalEvery: number;
  /** Called after each evaluation, e.g. for progress. */
  readonly onEval?: (point: EvalPoint) => void;
  /** Keep the state after this many iterations (rewind weights): TrainResult.keptState. */
  readonly keepStateAt?: number;
  /**
   * Evaluate in a second thread while training goes on (same points; see
   * background-eval.ts). Default: when there are at least 20 evaluations, at least 2
   * threads, and the program's step does not keep every core busy itself.
   */
  readonly backgroundEval?: boolean;
  /** The run settings (backend, threads, sparse and fused modes); default: the active context. */
  readonly context?: RunContext;
  /**
   * Asked between runs of steps: a reason (e.g. 'SIGINT') stops training with a Stopped
   * error (after a checkpoint of where it stopped, when `checkpoints.every` is set).
   */
  readonly stopRequested?: () => string | null;
  /** Checkpoints to take, and one to resume from (default: none). */
  readonly checkpoints?: TrainCheckpoints;
  /** Changes the masks as training goes, or ends it early (see mask-schedule.ts). */
  readonly maskSchedule?: MaskSchedule;
  /** Crops and flips the training minibatches on the fly, seeded by (seed, epoch) (data/augment.ts). */
  readonly augmentation?: Augmentation;
}

/**
 * Checkpoints of a training run (see checkpoint.ts): train() takes them at the end of a run of
 * steps, once every evaluation point up to there is delivered, and hands them to `save`.
 */
export interface TrainCheckpoints {
  /** When to take them (null: never, not even on a stop request; a `resume` is still resumed). */
  readonly every: CheckpointEvery | null;
  /** Keeps a checkpoint (a lottery stage writes it into its directory). Called synchronously; the checkpoint's arrays are copies. */
  readonly save: (checkpoint: TrainCheckpoint) => void;
  /** A checkpoint of this same training (same model, masks, data, seed, settings) to go on from instead of starting. */
  readonly resume?: TrainCheckpoint;
  /** Take one when training ends too (for a caller with more work after training: a branch's analysis). */
  readonly atEnd?: boolean;
  /** The clock of the schedule's durations, in milliseconds (default performance.now). */
  readonly now?: () => number;
}

export interface TrainResult {
  readonly curve: EvalPoint[];
  /** The evaluation of minimum validation loss (the earliest, on ties). */
  readonly earlyStop: EvalPoint;
  readonly final: EvalPoint;
  readonly seconds: number;
  /** The state after keepStateAt iterations, when asked for (and 0 < keepStateAt <= iterations). */
  readonly keptState?: StateDict;
  /** The program that trained the model. */
  readonly program: ProgramKind;
  /** Whether evaluation ran in a second thread. */
  readonly backgroundEval: boolean;
  /** The training's FLOPs (nn/flops.ts): as computed, and for the same steps on the dense network. */
  readonly flops: StepFlops;
  /** The masks at the end, when a mask schedule changed them. */
  readonly masks?: ReadonlyMap<string, Float32Array>;
  /** The mask schedule's points in this process and the time they took (the schedule's work and the program's recompilation). */
  readonly maskUpdates?: { readonly count: number; readonly seconds: number };
  /** The iteration at which the mask schedule ended training, when it did. */
  readonly stoppedAt?: number;
}

/** That a batch fits in the training split (what train() checks first; a run's checks before anything trains). */
export function checkBatchSize(batchSize: number, data: Splits): void {
  check(batchSize <= data.train.length,
    `--batch-size ${batchSize} is more than the ${data.train.length} training examples of ${data.name} (after ${data.validation.length} went to validation)`);
}

export function iterationsPerEpoch(trainSize: number, batchSize: number): number {
  return Math.floor(trainSize / batchSize);
}

/**
 * Where a run of steps that starts at iteration `it` ends: at the epoch's end or the next
 * evaluation point, and at most at `limit` (train() runs each run in one program.step call).
 */
export function runEnd(it: number, perEpoch: number, evalEvery: number, limit: number): number {
  return Math.min(limit, it - (it % perEpoch) + perEpoch, (Math.floor(it / evalEvery) + 1) * evalEvery);
}

/**
 * The one training loop: minibatch SGD/Adam over a training set reshuffled every epoch
 * (an epoch is ⌊N/B⌋ full batches), evaluating validation and test every `evalEvery`
 * iterations. The model and its masks are compiled into a program once; the loop only
 * asks it for runs of steps and evaluations, up to the next evaluation point or the
 * epoch's end. At the end the model holds the trained weights.
 */
export function train(opts: TrainOptions): TrainResult {
  const { model, data, iterations, batchSize, evalEvery } = opts;
  check(Number.isInteger(iterations) && iterations >= 0, `train: iterations must be a non-negative integer, got ${iterations}`);
  const startAt = opts.startAt ?? 0;
  check(Number.isInteger(startAt) && startAt >= 0 && startAt <= iterations, `train: start iteration must be an integer in [0, ${iterations}], got ${startAt}`);
  const schedule = opts.schedule ?? { lrAt: () => opts.optimizer.lr, nextChange: () => Infinity };
  check(Number.isInteger(batchSize) && batchSize >= 1, `train: batch size must be a positive integer, got ${batchSize}`);
  checkBatchSize(batchSize, data);
  check(Number.isInteger(evalEvery) && evalEvery >= 1, `train: eval-every must be a positive integer, got ${evalEvery}`);
  const started = performance.now();
  const context = opts.context ?? activeContext();
  model.seed(opts.seed); // dropout masks, like the data order, follow the run's seed
  model.train(true);
  const maskSchedule = opts.maskSchedule;
  const macs = weightMacs(model, data.train.sampleShape);
  let masks = opts.masks;
  const sampleShape = data.train.sampleShape;
  let program: Program = compileProgram(model, { masks, optimizer: opts.optimizer, context, sampleShape });
  let perStep = stepFlops(macs, maskDensities(masks), program.sparseWeights);
  const flops = { actual: 0, dense: 0 };
  const perEpoch = iterationsPerEpoch(data.train.length, batchSize);
  const curve: EvalPoint[] = [];
  const deliver = (point: EvalPoint) => {
    curve.push(point);
    opts.onEval?.(point);
  };
  // From the start of the schedule, resumed or not: the same choice as an uninterrupted run.
  const points = Math.floor(iterations / evalEvery) - Math.floor(startAt / evalEvery) + (iterations % evalEvery ? 2 : 1);
  // The evaluation thread compiles the masks it starts with: not for masks that change.
  // The evaluation thread rebuilds the model from its description: not one with a user's own module types.
  const unknown = unknownModuleTypes(model.describe());
  check(opts.backgroundEval !== true || unknown.length === 0,
    () => `train: backgroundEval rebuilds the model in a second thread from its description, and lth cannot rebuild module type ${unknown.map((u) => `'${u}'`).join(', ')}; leave backgroundEval unset or false`);
  const inBackground = !maskSchedule?.changesMasks && unknown.length === 0 && (opts.backgroundEval ?? (BackgroundEvaluator.worthwhile(points, context) && program.parallelEval));

  const checkpoints = opts.checkpoints;
  const resume = checkpoints?.resume;
  const clock = checkpoints?.now ?? (() => performance.now());
  const checkpointSchedule = checkpoints?.every ? new CheckpointSchedule(checkpoints.every, perEpoch, clock()) : null;
  let keptState: StateDict | undefined;
  let it = startAt;
  let priorSeconds = 0;
  if (resume) {
    restore(resume);
    curve.push(...resume.curve);
    keptState = resume.keptState;
    it = resume.iteration;
    priorSeconds = resume.seconds;
    flops.actual = resume.flops?.actual ?? 0;
    flops.dense = resume.flops?.dense ?? 0;
  }
  // A checkpoint is taken before the schedule's point at its iteration, if it has one there.
  let pending = maskSchedule ? maskSchedule.nextPoint(resume ? it - 1 : it) : Infinity;
  let stoppedAt: number | undefined;
  const maskUpdates = { count: 0, seconds: 0 };
  // RigL's dense gradients: a dense copy of the model, its batch and its pass's buffers.
  let gradModel: ReturnType<typeof buildModel> | null = null;
  let gradBatch: { x: Tensor; labels: Int32Array } | null = null;
  const gradArena = new BufferArena();
  /** The live weights at the mask schedule's current point, copied once for it and the recompilation. */
  let snapshot: StateDict | null = null;
  let lastCheckpoint = resume ? resume.iteration : -1;

  const background = inBackground ? new BackgroundEvaluator(model, opts.masks, data, context) : null;
  const evalNow = (iteration: number) => {
    if (background) {
      background.submit(iteration, program.state());
      return;
    }
    const val = program.evaluate(data.validation);
    const test = program.evaluate(data.test);
    deliver({ iteration, valLoss: val.loss, valAccuracy: val.accuracy, testLoss: test.loss, testAccuracy: test.accuracy });
  };
  /** A checkpoint at `it` (the end of a run of steps), once every evaluation up to it is delivered. */
  const checkpoint = () => {
    if (background) background.finish().forEach(deliver);
    checkpoints!.save({
      iteration: it, program: program.kind, weights: program.state(), optimizer: program.optimizerState(), random: model.randomState(),
      curve: [...curve], keptState, seconds: priorSeconds + (performance.now() - started) / 1000, flops: { ...flops },
      // Copies: a mask schedule may change its arrays in place at its next point. None
      // where it trains a dense network (an early-bird search's level 0).
      ...(maskSchedule ? { masks: new Map([...(masks ?? [])].map(([n, m]) => [n, m.slice()])), schedule: maskSchedule.save() } : {}),
    });
    lastCheckpoint = it;
    checkpointSchedule?.taken(clock());
  };

  const losses = new Float64Array(Math.min(evalEvery, perEpoch));
  try {
    let order: Int32Array | null = null;
    let trainData = data.train;
    if (!resume) evalNow(startAt);
    while (it < iterations) {
      const epoch = Math.floor(it / perEpoch), inEpoch = it % perEpoch;
      if (inEpoch === 0 || !order) {
        order = new Rng(opts.seed, 'data', epoch).permutation(data.train.length);
        trainData = opts.augmentation ? new AugmentedEpoch(data.train, opts.augmentation, opts.seed, epoch) : data.train;
      }
      if (it === pending) {
        const t0 = performance.now();
        snapshot = null;
        const action = maskSchedule!.at(live(it, trainData, order, inEpoch * batchSize));
        pending = maskSchedule!.nextPoint(it);
        if (action?.kind === 'stop') {
          stoppedAt = it;
          // Evaluation points are every evalEvery iterations: the one at `it` may already be there.
          if (it % evalEvery !== 0) evalNow(it);
          break;
        }
        if (action?.kind === 'masks') recompile(action.masks, action.grown, action.dropped, action.sameCounts);
        maskUpdates.count++;
        maskUpdates.seconds += (performance.now() - t0) / 1000;
      }
      let end = runEnd(it, perEpoch, evalEvery, iterations);
      if (opts.keepStateAt !== undefined && it < opts.keepStateAt) end = Math.min(end, opts.keepStateAt);
      end = Math.min(end, schedule.nextChange(it), pending);
      if (checkpointSchedule) end = Math.min(end, checkpointSchedule.boundaryAfter(it));
      const lr = schedule.lrAt(it);
      const run = losses.subarray(0, end - it);
      const ran = program.step({ data: trainData, order, from: inEpoch * batchSize, batchSize }, run, lr);
      const loss = run[ran - 1];
      if (!Number.isFinite(loss)) {
        throw new LthError(`training diverged: loss is ${loss} at iteration ${it + ran - 1} (learning rate ${lr} too high?)`);
      }
      it += ran;
      flops.actual += ran * batchSize * perStep.actual;
      flops.dense += ran * batchSize * perStep.dense;
      const stop = opts.stopRequested?.();
      if (stop && !checkpointSchedule) throw new Stopped(stop);
      if (it === opts.keepStateAt) keptState = program.state();
      if (it % evalEvery === 0 || it === iterations) evalNow(it);
      if (background) background.poll().forEach(deliver);
      if (stop) {
        // Nothing done is lost: the run resumes from here.
        if (it > lastCheckpoint) checkpoint();
        throw new Stopped(stop);
      }
      if (checkpointSchedule && it < iterations && checkpointSchedule.due(it, clock())) checkpoint();
    }
    if (background) background.finish().forEach(deliver);
    if (checkpoints?.atEnd && checkpointSchedule && lastCheckpoint < iterations) checkpoint();
  } finally {
    background?.close();
    program.writeBack();
  }
  return {
    curve, earlyStop: earlyStopPoint(curve), final: curve[curve.length - 1], seconds: priorSeconds + (performance.now() - started) / 1000,
    keptState, program: program.kind, backgroundEval: background !== null, flops: { ...flops },
    ...(maskSchedule ? { masks, maskUpdates } : {}), ...(stoppedAt !== undefined ? { stoppedAt } : {}),
  };

  /** The training as the mask schedule sees it at iteration `at`, whose minibatch is order[from .. from + batchSize) of `trainData`. */
  function live(at: number, trainData: Dataset, order: Int32Array, from: number): LiveTraining {
    return {
      iteration: at, masks: masks ?? new Map(),
      weights: () => (snapshot ??= program.state()),
      smallestWeights: (name, count, out) => {
        if (program.smallestWeights) return program.smallestWeights(name, count, out);
        context.backend.selectByMagnitude((snapshot ??= program.state()).get(name)!, masks!.get(name)!, 1, count, false, out);
      },
      denseGradients: (names) => {
        flops.actual += batchSize * perStep.dense;
        if (program.denseGradients) return program.denseGradients({ data: trainData, order, from, batchSize }, names);
        if (!gradModel) {
          gradModel = buildModel(model.describe());
          gradModel.seed(opts.seed);
        }
        const net = gradModel;
        net.loadState(snapshot ??= program.state(), 'the live weights');
        net.train(true);
        // The gradient arrays and the pass's buffers are reused from one update to the next.
        for (const [, t] of net.namedParameters()) t.grad?.fill(0);
        gradBatch ??= { x: Tensor.zeros([batchSize, ...data.train.sampleShape]), labels: new Int32Array(batchSize * data.train.labelSize) };
        const { x, labels } = gradBatch;
        trainData.gather(order, from, batchSize, x.data, labels);
        gradArena.run(() => softmaxCrossEntropy(net.forward(x), labels).backward());
        return new Map(names.map((n) => [n, net.parameter(n).ensureGrad()]));
      },
    };
  }

  /** Trains with `next` masks from here on (see withMasks). */
  function recompile(
    next: ReadonlyMap<string, Float32Array>, grown?: ReadonlyMap<string, Int32Array>, dropped?: ReadonlyMap<string, Int32Array>, sameCounts = false,
  ): void {
    program = withMasks(program, model, { masks, optimizer: opts.optimizer, context, sampleShape }, next, grown, snapshot ?? undefined, dropped);
    masks = next;
    // The same counts run on the same kernels: the step's cost is unchanged.
    if (!sameCounts) perStep = stepFlops(macs, maskDensities(masks), program.sparseWeights);
  }

  /** Puts the program and the model where `cp` found them; the curve and the kept state are the caller's. */
  function restore(cp: TrainCheckpoint): void {
    const problem = (what: string) => new LthError(`cannot resume from the checkpoint at iteration ${cp.iteration}: ${what}`);
    if (!(Number.isInteger(cp.iteration) && cp.iteration >= startAt && cp.iteration <= iterations)) {
      throw problem(`it is not an iteration of this training (from ${startAt} to ${iterations})`);
    }
    const last = cp.curve[cp.curve.length - 1];
    if (!last || cp.curve[0].iteration !== startAt || ((cp.iteration % evalEvery === 0 || cp.iteration === iterations) && last.iteration !== cp.iteration)) {
      throw problem('its curve does not hold every evaluation up to it');
    }
    const keeps = opts.keepStateAt !== undefined && opts.keepStateAt > startAt && cp.iteration >= opts.keepStateAt;
    if (keeps !== (cp.keptState !== undefined)) throw problem(keeps ? `it lacks the weights kept at iteration ${opts.keepStateAt}` : 'it holds kept weights this training does not keep');
    try {
      if (maskSchedule) {
        if (!cp.masks || !cp.schedule) throw new LthError('it holds no masks of its mask schedule');
        maskSchedule.restore(cp.schedule);
        if (cp.masks.size) {
          model.loadState(cp.weights, 'the checkpoint');
          masks = cp.masks;
          program = compileProgram(model, { masks, optimizer: opts.optimizer, context, sampleShape });
          perStep = stepFlops(macs, maskDensities(masks), program.sparseWeights);
        }
      }
      if (cp.program !== program.kind) throw new LthError(`it was made by the ${cp.program} program, this training runs the ${program.kind} program`);
      program.load(cp.weights);
      program.loadOptimizerState(cp.optimizer);
      model.loadRandomState(cp.random, 'random streams');
    } catch (e) {
      if (e instanceof LthError) throw problem(e.message);
      throw e;
    }
  }
}
