import fs from 'node:fs';
import path from 'node:path';
import { getBackend } from '../backend/index.js';
import { check } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { parseStep, stepToIterations } from '../core/steps.js';
import { getModel } from '../models/registry.js';
import type { Model, StateDict } from '../nn/model.js';
import { density, onesMask, type Mask } from '../pruning/mask.js';
import { getStrategy, randomMaskLike, ratesForTarget } from '../pruning/strategies.js';
import { writeFileAtomic, writeJsonAtomic } from '../store/atomic.js';
import { FILES, readDone, stageDir, type StageName, type StageResult } from '../store/layout.js';
import { loadSafetensors, saveSafetensors } from '../store/safetensors.js';
import { loadSplits, metricsCsv } from '../training/run.js';
import { iterationsPerEpoch, train, type EvalPoint } from '../training/train.js';
import { runHash, runIdentity, type LotteryHparams } from './hparams.js';
import { writeSummary, type LotterySummary } from './summary.js';

export interface LotteryProgress {
  replicate: number;
  level: number;
  stage: StageName;
  density: number;
  point: EvalPoint;
  iterations: number;
}

export interface LotteryOptions {
  onProgress?: (p: LotteryProgress) => void;
  /** A stage was found finished on disk (skipped) or has just finished. */
  onStage?: (result: StageResult, skipped: boolean) => void;
}

function loadState(file: string): StateDict {
  return new Map([...loadSafetensors(file)].map(([n, t]) => [n, t.data]));
}

function saveState(file: string, model: Model | StateDict): void {
  const entries = 'namedParameters' in model
    ? model.namedParameters().map(([n, t]) => [n, { shape: t.shape, data: t.data }] as const)
    : [...model].map(([n, d]) => [n, { shape: [d.length], data: d }] as const);
  saveSafetensors(file, new Map(entries));
}

/** The per-round rate of every prunable weight: the model's, --rate, or derived from --target-density. */
export function pruningRates(h: LotteryHparams, model: Model): Map<string, number> {
  const spec = getModel(h.training.model);
  let rates = spec.pruningRates(model);
  if (h.rate !== undefined) {
    // --rate replaces the fully connected rate (output layer at half); conv layers keep theirs.
    const out = `${model.outputLayerName()}.weight`;
    const isConv = (n: string) => model.parameter(n).shape.length === 4;
    rates = new Map([...rates].map(([n, r]) => [n, isConv(n) ? r : n === out ? h.rate! / 2 : h.rate!]));
  }
  if (h.targetDensity !== undefined) {
    const sizes = new Map(model.namedParameters().map(([n, t]) => [n, t.size]));
    rates = ratesForTarget(rates, sizes, h.targetDensity, h.levels);
  }
  return rates;
}

/**
 * Runs (or resumes) a lottery experiment: per replicate, level 0 trains the dense
 * network; level k prunes level k-1's trained weights, resets the survivors to the
 * rewind weights (θ0 by default) and trains the full budget; each pruned level can
 * also train the reinit and random_prune controls. Every stage checks for its
 * done.json first, so a killed run resumes where it stopped with identical results.
 */
export function runLottery(h: LotteryHparams, opts: LotteryOptions = {}): { runDir: string; summary: LotterySummary } {
  const runDir = path.join(h.root, runHash(h));
  const identity = runIdentity(h);
  const spec = getModel(h.training.model);
  const strategy = getStrategy(h.strategy);
  const summarize = () => writeSummary(runDir, identity, h.training.seed, h.replicates, h.levels, h.branches);
  const splitsFor = (seed: number) => loadSplits({ ...h.training, seed });

  // Check the budget against the data before anything is written.
  let splits = splitsFor(h.training.seed);
  const perEpoch = iterationsPerEpoch(splits.train.length, h.training.batchSize);
  const iterations = stepToIterations(parseStep(h.training.steps), perEpoch);
  const rewindAt = stepToIterations(parseStep(h.rewindStep), perEpoch);
  check(rewindAt <= iterations, `--rewind-step ${h.rewindStep} (${rewindAt} iterations) is beyond the training budget ${h.training.steps} (${iterations} iterations)`);
  writeJsonAtomic(path.join(runDir, FILES.hparams), { identity, resolved: h });

  for (let r = 0; r < h.replicates; r++) {
    const seed = h.training.seed + r;
    if (r > 0) splits = splitsFor(seed);
    const template = spec.build();
    template.initialize(new Rng(seed, 'init'));
    const theta0 = template.state();
    const rates = pruningRates(h, template);
    const prunable = template.prunableNames();

    /** Trains one stage from `init` under `mask` unless it is already done. */
    const stage = (level: number, name: StageName, init: StateDict, mask: Mask, keepRewind = false): StageResult => {
      const dir = stageDir(runDir, r, level, name);
      const existing = readDone(dir);
      if (existing) {
        opts.onStage?.(existing, true);
        return existing;
      }
      const model = spec.build();
      model.loadState(init);
      const maskDensity = density(mask);
      if (maskDensity < 1) model.setMasks(mask);
      saveState(path.join(dir, FILES.mask), mask);
      saveState(path.join(dir, FILES.init), model);
      const result = train({
        model, data: splits, iterations, batchSize: h.training.batchSize, seed, evalEvery: h.training.evalEvery,
        optimizer: { name: h.training.optimizer, lr: h.training.lr, momentum: h.training.momentum, weightDecay: h.training.weightDecay },
        onEval: (point) => opts.onProgress?.({ replicate: r, level, stage: name, density: maskDensity, point, iterations }),
        keepStateAt: keepRewind ? rewindAt : undefined,
      });
      if (result.keptState) saveState(path.join(dir, FILES.rewind), result.keptState);
      saveState(path.join(dir, FILES.final), model);
      writeFileAtomic(path.join(dir, FILES.metrics), metricsCsv(result.curve));
      writeJsonAtomic(path.join(dir, FILES.hparams), { ...identity, replicate: r, seed, level, stage: name });
      const done: StageResult = {
        replicate: r, level, stage: name, density: maskDensity, iterations,
        earlyStopIteration: result.earlyStop.iteration, earlyStopValLoss: result.earlyStop.valLoss,
        earlyStopValAccuracy: result.earlyStop.valAccuracy, earlyStopTestAccuracy: result.earlyStop.testAccuracy,
        finalTestAccuracy: result.final.testAccuracy, seconds: result.seconds, backend: getBackend().name,
      };
      writeJsonAtomic(path.join(dir, FILES.done), done);
      opts.onStage?.(done, false);
      summarize();
      return done;
    };

    const masked = (state: StateDict, mask: Mask): StateDict =>
      new Map([...state].map(([n, v]) => {
        const m = mask.get(n);
        return [n, m ? v.map((x, i) => (m[i] === 0 ? 0 : x)) : Float32Array.from(v)];
      }));

    // Level 0: the dense network, from θ0.
    stage(0, 'main', theta0, onesMask(theta0, prunable), rewindAt > 0);
    const level0 = stageDir(runDir, r, 0, 'main');
    const rewindState = rewindAt > 0 ? loadState(path.join(level0, FILES.rewind)) : theta0;

    for (let k = 1; k <= h.levels; k++) {
      const prev = stageDir(runDir, r, k - 1, 'main');
      const dir = stageDir(runDir, r, k, 'main');
      // A finished level's mask is on disk; otherwise prune the previous level's trained weights.
      const mask = readDone(dir)
        ? loadState(path.join(dir, FILES.mask))
        : strategy({ rates, seed, level: k, ignore: h.ignore }, loadState(path.join(prev, FILES.final)), loadState(path.join(prev, FILES.mask)));
      stage(k, 'main', masked(rewindState, mask), mask);
      for (const b of h.branches) {
        if (b === 'reinit') {
          const fresh = spec.build();
          fresh.initialize(new Rng(seed, 'reinit', k));
          stage(k, 'reinit', masked(fresh.state(), mask), mask);
        } else {
          const randomMask = randomMaskLike(mask, new Rng(seed, 'random_prune', k));
          stage(k, 'random_prune', masked(rewindState, randomMask), randomMask);
        }
      }
    }
  }
  const summary = summarize();
  return { runDir, summary };
}

/** Lists the runs under `root` with their hyperparameters and how far they got. */
export function listRuns(root: string): Array<{ run: string; hparams: unknown; stagesDone: number; summary: LotterySummary | null }> {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, FILES.hparams))).map((d) => {
    const dir = path.join(root, d);
    const hp = JSON.parse(fs.readFileSync(path.join(dir, FILES.hparams), 'utf8'));
    const summaryFile = path.join(dir, FILES.summary);
    const summary = fs.existsSync(summaryFile) ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as LotterySummary) : null;
    let stagesDone = 0;
    for (const rep of fs.readdirSync(dir).filter((x) => x.startsWith('replicate_'))) {
      for (const lvl of fs.readdirSync(path.join(dir, rep))) {
        for (const s of fs.readdirSync(path.join(dir, rep, lvl))) if (fs.existsSync(path.join(dir, rep, lvl, s, FILES.done))) stagesDone++;
      }
    }
    return { run: d, hparams: hp.identity, stagesDone, summary };
  });
}
