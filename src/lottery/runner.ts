import fs from 'node:fs';
import path from 'node:path';
import { activeContext, describeSettings, type RunContext } from '../backend/index.js';
import { LthError, Stopped } from '../core/errors.js';
import { LTH_VERSION } from '../core/version.js';
import { splitsFingerprint, type Splits } from '../data/dataset.js';
import { readJson, readStoreJson, writeJsonAtomic } from '../store/atomic.js';
import { lockRun } from '../store/run-lock.js';
import { FILES, listStages, readDone, stagePath, type StageResult } from '../store/layout.js';
import { loadSplits } from '../training/run.js';
import { checkBatchSize } from '../training/train.js';
import { MAIN, controlNames, getBranch } from './branches.js';
import { differsFromModelDefaults, type LotteryHparams } from './hparams.js';
import { planLottery, type StageSpec } from './plan.js';
import { budget, experimentOf, runStage, transferred, type Experiment, type LotteryProgress } from './stage.js';
import { getModel } from '../models/registry.js';
import { writeSummary, type LotterySummary } from './summary.js';

export type { LotteryProgress } from './stage.js';

export interface LotteryOptions {
  onProgress?: (p: LotteryProgress) => void;
  /** A stage was found finished on disk (skipped) or has just finished. */
  onStage?: (result: StageResult, skipped: boolean) => void;
  /** The run settings; default: the active context. */
  context?: RunContext;
  /** Asked between stages and during training: a reason (e.g. 'SIGINT') stops the run with a Stopped error. */
  stopRequested?: () => string | null;
  /** Told what is surely worth knowing but not an error (default: a 'lth: warning:' line on stderr). */
  onWarning?: (message: string) => void;
}

/**
 * Why extending this run may give results that differ from its finished stages' (other
 * run settings, another lth version), or null. The results stay correct; only their last
 * bits may differ from what the finished stages' settings would have given.
 */
export function extensionWarning(runDir: string, context: RunContext): string | null {
  const now = describeSettings(context.settings);
  let stages: StageResult[];
  try {
    stages = listStages(runDir);
  } catch (e) {
    // A damaged stage: the stages' own checks report it, with what to do.
    if (e instanceof LthError) return null;
    throw e;
  }
  for (const s of stages) {
    const was = s.numerics;
    const differs = was ? Object.keys(now).filter((k) => was[k] !== now[k]) : [];
    if (differs.length || (s.lth && s.lth !== LTH_VERSION)) {
      const what = [...differs.map((k) => `${k} ${String(was![k])} (now ${String(now[k])})`), ...(s.lth && s.lth !== LTH_VERSION ? [`lth ${s.lth} (now ${LTH_VERSION})`] : [])];
      return `this run's finished stages were computed with ${what.join(', ')}: new stages may differ from them in the last bits (stage replicate_${s.replicate}/level_${s.level}/${s.stage} and maybe others)`;
    }
  }
  return null;
}

/**
 * What a run's hparams.json holds: the hyperparameters that name it, all of them resolved,
 * its branches' names and labels, and the fingerprint of the data its stages train on.
 */
export function runHparams(exp: Experiment, data?: string): Record<string, unknown> {
  const branches = [MAIN, ...exp.h.branches].map((b) => ({ name: b, label: getBranch(b).label }));
  return { identity: exp.identity, resolved: exp.h, branches, ...(data ? { data: { fingerprint: data } } : {}) };
}

/**
 * That `splits` hold the examples the run's stages were trained on, by the fingerprint its
 * hparams.json records (splitsFingerprint; none in a run made before fingerprints). The
 * data directory is not part of a run's name (the data may lie elsewhere on another
 * machine), so a command that gives another one, or forgets it, would otherwise mix data
 * sets in one run. Returns the fingerprint of `splits`.
 */
export function checkRunData(runDir: string, splits: Splits): string {
  const now = splitsFingerprint(splits);
  checkRunFingerprint(runDir, splits.name, now);
  return now;
}

/** What to do about a run's damaged hparams.json, after its error. */
export const DAMAGED_RUN_HPARAMS = `: remove it and run 'lth lottery' again with the run's flags, which rewrites it and keeps every finished stage`;

/** checkRunData with the fingerprint of data set `dataset` already computed. */
export function checkRunFingerprint(runDir: string, dataset: string, fingerprint: string): void {
  const file = path.join(runDir, FILES.hparams);
  if (!fs.existsSync(file)) return;
  const hp = readStoreJson<{ data?: { fingerprint?: unknown }; resolved?: { training?: { dataDir?: string } } }>(file, DAMAGED_RUN_HPARAMS);
  const was = hp.data?.fingerprint;
  if (typeof was === 'string' && was !== fingerprint) {
    const dir = hp.resolved?.training?.dataDir;
    throw new LthError(`${runDir}: its stages were trained on other ${dataset} data than this command loads (their examples differ); `
      + `give the data they were trained on (recorded: ${dir === undefined ? 'the default files, without --data-dir' : `--data-dir ${dir}`}), or another --root for a new run`);
  }
}

/** That the --transfer-from run has a finished ticket for every replicate and level this run trains. */
function checkTransferSource(h: LotteryHparams): void {
  const source = path.resolve(h.transferFrom!);
  if (!fs.existsSync(path.join(source, FILES.hparams))) {
    throw new LthError(`--transfer-from: ${h.transferFrom} is not a lottery run directory (expected ${FILES.hparams} in it; see 'lth ls')`);
  }
  const missing: string[] = [];
  for (let r = 0; r < h.replicates; r++) {
    for (let k = 0; k <= h.levels; k++) if (!readDone(path.join(source, stagePath(r, k, MAIN)))) missing.push(stagePath(r, k, MAIN));
  }
  if (missing.length) {
    throw new LthError(`--transfer-from: ${h.transferFrom} lacks the finished tickets ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}; --levels and --replicates may ask for no more than it has`);
  }
  // Its tickets fit this run's model (the source's θ0 and first mask, as the stages will read them).
  const model = getModel(h.training.model, h.training.dataset).build();
  transferred(source, stagePath(0, 0, MAIN), FILES.init, model);
  if (h.levels >= 1) transferred(source, stagePath(0, 1, MAIN), FILES.mask, model);
}

/** Writes the run's summary.json from the finished stages on disk. */
export function summarizeRun(exp: Experiment): LotterySummary {
  const { h } = exp;
  return writeSummary(exp.runDir, {
    run: path.basename(exp.runDir), hparams: exp.identity, seed: h.training.seed, replicates: h.replicates, levels: h.levels,
    branches: h.branches, main: MAIN,
  });
}

/**
 * Checks what can be checked before any work starts: the data loads, the rewind step and
 * the schedule's milestones are within the budget, a transfer source is a run. Returns the
 * replicate-0 splits it loaded. What a dry run checks, and the start of prepareRun.
 */
export function checkRun(h: LotteryHparams): Splits {
  const splits = loadSplits(h.training);
  checkBatchSize(h.training.batchSize, splits);
  budget(h, splits.train.length);
  if (h.transferFrom !== undefined) checkTransferSource(h);
  return splits;
}

/**
 * Checks the run (checkRun, unless given the splits a checkRun of it returned) and records
 * its hyperparameters (recordRun): the first step of every executor. Returns the
 * replicate-0 splits it loaded.
 */
export function prepareRun(exp: Experiment, checked?: Splits): Splits {
  const splits = checked ?? checkRun(exp.h);
  recordRun(exp, checkRunData(exp.runDir, splits));
  return splits;
}

/**
 * Writes the run's hparams.json and returns the run as recorded: this request's
 * hyperparameters with the levels, replicates and branches an earlier request on the same
 * run asked for kept (they name no other run: they only add stages), so that a smaller
 * command on a bigger run leaves every tool seeing all of its stages.
 */
function recordRun(exp: Experiment, data: string): Experiment {
  const file = path.join(exp.runDir, FILES.hparams);
  let before: LotteryHparams | undefined;
  try {
    before = fs.existsSync(file) ? readJson<{ resolved?: LotteryHparams }>(file).resolved : undefined;
  } catch {
    before = undefined; // damaged: rewritten from this request
  }
  const h = before && Number.isInteger(before.levels) && Number.isInteger(before.replicates) && Array.isArray(before.branches)
    ? {
      ...exp.h,
      levels: Math.max(exp.h.levels, before.levels),
      replicates: Math.max(exp.h.replicates, before.replicates),
      branches: [...before.branches.filter((b) => typeof b === 'string' && controlNames().includes(b)), ...exp.h.branches.filter((b) => !before!.branches.includes(b))],
    }
    : exp.h;
  const whole = { ...exp, h };
  writeJsonAtomic(file, runHparams(whole, data));
  return whole;
}

/**
 * Runs (or resumes) a lottery experiment in this process: the local executor. It walks the
 * plan (planLottery) in its order, which runs every stage after its dependencies, and runs
 * each stage with runStage; a stage whose done.json exists is skipped, so a killed run
 * resumes where it stopped with identical results. It holds the run's lock while it works
 * (store/run-lock.ts): another process on the same run is refused with the holder's name.
 */
export function runLottery(h: LotteryHparams, opts: LotteryOptions = {}): { runDir: string; summary: LotterySummary } {
  return runExperiment(experimentOf(h), opts);
}

/** runLottery on a given experiment (repairRun's: the run in the directory it was given). */
export function runExperiment(exp: Experiment, opts: LotteryOptions = {}): { runDir: string; summary: LotterySummary } {
  const { h } = exp;
  const context = opts.context ?? activeContext();
  const first = checkRun(h);
  const release = lockRun(exp.runDir, 'training its stages');
  try {
    const whole = recordRun(exp, checkRunData(exp.runDir, first));
    const warning = extensionWarning(exp.runDir, context);
    if (warning) (opts.onWarning ?? ((m) => process.stderr.write(`lth: warning: ${m}\n`)))(warning);
    // Each replicate's data split is loaded once and kept while its stages run.
    let loaded: { seed: number; splits: Splits } = { seed: h.training.seed, splits: first };
    const splits = (seed: number) => {
      if (loaded.seed !== seed) loaded = { seed, splits: loadSplits({ ...h.training, seed }) };
      return loaded.splits;
    };
    for (const spec of planLottery(h)) {
      const dir = path.join(exp.runDir, spec.id);
      let outcome: ReturnType<typeof runStage>;
      try {
        outcome = runStage(exp, spec, { context, splits, onProgress: opts.onProgress, stopRequested: opts.stopRequested });
      } catch (e) {
        // A user's mistake stops the stage for good until it is fixed: lth status shows it failed, with why.
        if (e instanceof LthError && !(e instanceof Stopped) && !fs.existsSync(path.join(dir, FILES.done))) writeJsonAtomic(path.join(dir, FILES.failed), { message: e.message, at: new Date().toISOString() });
        throw e;
      }
      const { result, skipped } = outcome;
      if (!skipped) fs.rmSync(path.join(dir, FILES.failed), { force: true });
      opts.onStage?.(result, skipped);
      if (!skipped) summarizeRun(whole);
    }
    return { runDir: exp.runDir, summary: summarizeRun(whole) };
  } finally {
    release();
  }
}

/** The plan of `h` with each stage's state on disk: what `lth lottery --dry-run` prints. */
export function describePlan(h: LotteryHparams): Array<StageSpec & { done: boolean }> {
  const exp = experimentOf(h);
  const done = new Set(listStages(exp.runDir).map((s) => `replicate_${s.replicate}/level_${s.level}/${s.stage}`));
  return planLottery(h).map((s) => ({ ...s, done: done.has(s.id) }));
}

/**
 * Lists the runs under `root` with their hyperparameters and how far they got. A run whose
 * files cannot be read is listed with the problem (`damaged`) instead of its progress, so
 * that one damaged run hides none of the others.
 */
export function listRuns(root: string): Array<{ run: string; hparams: unknown; differs: Record<string, unknown>; stagesDone: number; stages: number | null; summary: LotterySummary | null; damaged?: string }> {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, FILES.hparams))).map((d) => {
    const dir = path.join(root, d);
    try {
      const hp = readStoreJson<{ identity?: unknown; resolved?: LotteryHparams }>(path.join(dir, FILES.hparams), DAMAGED_RUN_HPARAMS);
      const summaryFile = path.join(dir, FILES.summary);
      const summary = fs.existsSync(summaryFile) ? readStoreJson<LotterySummary>(summaryFile) : null;
      // The stages its plan has (null for a record without its resolved hyperparameters).
      const stages = hp.resolved && typeof hp.resolved.levels === 'number' ? planLottery(hp.resolved).length : null;
      const differs = hp.resolved && typeof hp.resolved.levels === 'number' ? differsFromModelDefaults(hp.resolved) : {};
      return { run: d, hparams: hp.identity ?? {}, differs, stagesDone: listStages(dir).length, stages, summary };
    } catch (e) {
      if (!(e instanceof LthError)) throw e;
      return { run: d, hparams: {}, differs: {}, stagesDone: 0, stages: null, summary: null, damaged: e.message.endsWith(DAMAGED_RUN_HPARAMS) ? e.message : `${e.message}; 'lth verify ${dir}' checks it` };
    }
  });
}
