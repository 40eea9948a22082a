import fs from 'node:fs';
import path from 'node:path';
import type { RunContext } from '../backend/index.js';
import { LthError, Stopped } from '../core/errors.js';
import { planLottery } from '../lottery/plan.js';
import { checkRunFingerprint, describePlan, runLottery, type LotteryProgress } from '../lottery/runner.js';
import { budget } from '../lottery/stage.js';
import type { LotterySummary } from '../lottery/summary.js';
import { removeReport, writeReport } from '../report/lazy.js';
import type { ReportResult } from '../report/index.js';
import { readStoreJson, writeJsonAtomic } from '../store/atomic.js';
import type { StageResult } from '../store/layout.js';
import { loadSplits } from '../training/run.js';
import { splitsFingerprint } from '../data/dataset.js';
import { resolveSweep, type ExpandOptions, type ResolvedSweep, type SweepRun } from './spec.js';

/** The file a sweep's report directory holds besides the report: its runs. */
export const SWEEP_JSON = 'sweep.json';

/** Where a sweep's report goes unless told: <root>/sweep-<the sweep's hash>. */
export function defaultReportDir(sweep: ResolvedSweep): string {
  return path.join(sweep.runs[0].hparams.root, `sweep-${sweep.hash}`);
}

/**
 * Runs the runs of a sweep somewhere else than in this process (a queue): `submit` hands a
 * run over; `wait`, when given, resolves once it has finished. Every run is submitted
 * before the first is waited for.
 */
export interface SweepExecutor {
  submit(run: SweepRun): Promise<{ runDir: string; enqueued: number }>;
  wait?: (run: SweepRun) => Promise<{ finished: boolean; summary?: LotterySummary }>;
}

export interface SweepOptions extends ExpandOptions {
  /** Where report.html, its figures and sweep.json go (default: defaultReportDir). */
  reportDir?: string;
  /** Run settings of the local executor (default: the active context). */
  context?: RunContext;
  /** Asked between stages and during training: a reason stops the sweep with a Stopped error (finished stages are kept). */
  stopRequested?: () => string | null;
  /** Runs each run elsewhere instead of with runLottery in this process. */
  execute?: SweepExecutor;
  /** A run starts (index from 0). */
  onRun?: (run: SweepRun, index: number, total: number) => void;
  /**
   * A run has finished, locally (how many of its stages were trained now, how many were
   * found finished) or on the queue; or it was submitted (`finished` false).
   */
  onRunEnd?: (run: SweepRun, outcome: SweepRunOutcome, index: number, total: number) => void;
  onStage?: (run: SweepRun, result: StageResult, skipped: boolean) => void;
  onProgress?: (run: SweepRun, p: LotteryProgress) => void;
  onWarning?: (message: string) => void;
}

export interface SweepRunOutcome {
  runDir: string;
  /** False for a run submitted to a queue and not (yet) waited for. */
  finished: boolean;
  /** Stages trained in this call and found finished (skipped), by the local executor. */
  stagesTrained: number;
  stagesSkipped: number;
  /** Stages a queue executor enqueued. */
  enqueued?: number;
  summary?: LotterySummary;
  /** Why the run stopped (a user's mistake: a diverged loss, bad data, a run in use); the sweep went on with the others. */
  failed?: string;
}

/** One run as sweep.json lists it. */
export interface SweepJsonRun {
  label: string;
  hash: string;
  runDir: string;
  /** The hyperparameters that vary: this run's axis values. */
  values: Record<string, unknown>;
  finished: boolean;
  /** Why the run stopped, when it failed. */
  failed?: string;
}

export interface SweepResult {
  sweep: string;
  reportDir: string;
  /** Path of sweep.json. */
  sweepJson: string;
  runs: Array<SweepJsonRun & { stagesTrained: number; stagesSkipped: number; enqueued?: number }>;
  /** The combined report; null while some run has not finished (submitted to a queue, not waited for). */
  report: ReportResult | null;
  warnings: string[];
}

/**
 * The dry run of a sweep: every run's budget checked as runSweep checks it, then its runs
 * with their plans' sizes and what is already done; reads, writes nothing.
 */
export function describeSweep(sweep: ResolvedSweep, reportDir = defaultReportDir(sweep), source?: string): {
  sweep: string; reportDir: string; axes: Record<string, unknown[]>;
  runs: Array<{ label: string; hash: string; runDir: string; values: Record<string, unknown>; stages: number; done: number }>;
} {
  checkBudgets(sweep, source ? `sweep: ${source}` : 'sweep');
  return {
    // The axes with their values, as sweep.json gives them.
    sweep: sweep.hash, reportDir, axes: sweep.axisValues,
    runs: sweep.runs.map((r) => {
      const plan = describePlan(r.hparams);
      return { label: r.label, hash: r.hash, runDir: r.runDir, values: r.values, stages: planLottery(r.hparams).length, done: plan.filter((s) => s.done).length };
    }),
  };
}

/**
 * That every run's rewind step lies within its budget, and that a run made earlier was
 * trained on the data this sweep loads (checkRunFingerprint), for all runs before any
 * trains or is submitted (the checks resolveLottery cannot make: they need the data set,
 * loaded once per data set here).
 */
function checkBudgets(sweep: ResolvedSweep, where: string): void {
  const loaded = new Map<string, { trainSize: number; fingerprint: string }>();
  for (const [i, r] of sweep.runs.entries()) {
    const t = r.hparams.training;
    const key = JSON.stringify([t.dataset, t.dataDir ?? null]);
    try {
      if (!loaded.has(key)) {
        const splits = loadSplits(t);
        loaded.set(key, { trainSize: splits.train.length, fingerprint: splitsFingerprint(splits) });
      }
      const { trainSize, fingerprint } = loaded.get(key)!;
      budget(r.hparams, trainSize);
      checkRunFingerprint(r.runDir, t.dataset, fingerprint);
    } catch (e) {
      if (!(e instanceof LthError)) throw e;
      throw new LthError(`${where}: run ${i + 1} of ${sweep.runs.length} (${r.label}): ${e.message.replace(/--rewind-step/g, 'rewindStep').replace(/--steps/g, 'steps')}`);
    }
  }
}

/**
 * Runs a sweep: checks and expands it (resolveSweep), then runs its runs one after another,
 * locally with runLottery (a run already finished trains nothing: runs are named by their
 * hyperparameters) or with `execute`; then, once every run has finished, writes one report
 * comparing them (writeReport of the first run, the others compared) and sweep.json into
 * the report directory. `spec` is a parsed sweep file or an already resolved sweep.
 */
export async function runSweep(spec: unknown, opts: SweepOptions = {}): Promise<SweepResult> {
  const where = opts.source ? `sweep: ${opts.source}` : 'sweep';
  const sweep = isResolved(spec) ? spec : resolveSweep(spec, opts);
  const reportDir = opts.reportDir ?? defaultReportDir(sweep);
  const warnings: string[] = [];
  const warn = (m: string) => { warnings.push(m); (opts.onWarning ?? ((x) => process.stderr.write(`lth: warning: ${x}\n`)))(m); };
  checkBudgets(sweep, where);
  checkReportDir(reportDir, sweep.hash, where);

  const results: SweepResult['runs'] = [];
  const total = sweep.runs.length;
  const record = (run: SweepRun, outcome: SweepRunOutcome, i: number) => {
    opts.onRunEnd?.(run, outcome, i, total);
    results[i] = {
      label: run.label, hash: run.hash, runDir: outcome.runDir, values: run.values, finished: outcome.finished,
      ...(outcome.failed !== undefined ? { failed: outcome.failed } : {}),
      stagesTrained: outcome.stagesTrained, stagesSkipped: outcome.stagesSkipped, ...(outcome.enqueued !== undefined ? { enqueued: outcome.enqueued } : {}),
    };
  };
  const execute = opts.execute;
  if (execute) {
    for (const [i, run] of sweep.runs.entries()) {
      opts.onRun?.(run, i, total);
      const r = await execute.submit(run);
      record(run, { runDir: r.runDir, finished: false, stagesTrained: 0, stagesSkipped: 0, enqueued: r.enqueued }, i);
    }
    if (execute.wait) {
      for (const [i, run] of sweep.runs.entries()) {
        const r = await execute.wait(run);
        record(run, { runDir: results[i].runDir, finished: r.finished, stagesTrained: 0, stagesSkipped: 0, enqueued: results[i].enqueued, summary: r.summary }, i);
      }
    }
  } else {
    for (const [i, run] of sweep.runs.entries()) {
      opts.onRun?.(run, i, total);
      let trained = 0, skipped = 0;
      try {
        const { runDir, summary } = runLottery(run.hparams, {
          context: opts.context, stopRequested: opts.stopRequested, onWarning: (m) => warn(`${run.label}: ${m}`),
          onStage: (s, wasSkipped) => { if (wasSkipped) skipped++; else trained++; opts.onStage?.(run, s, wasSkipped); },
          onProgress: opts.onProgress && ((p) => opts.onProgress!(run, p)),
        });
        record(run, { runDir, finished: summary.complete, stagesTrained: trained, stagesSkipped: skipped, summary }, i);
      } catch (e) {
        // A user's mistake in one run (a learning rate that diverges) leaves the others to run;
        // a stop request or a failure of the machine ends the sweep.
        if (!(e instanceof LthError) || e instanceof Stopped) throw e;
        warn(`${run.label}: failed: ${e.message}`);
        record(run, { runDir: run.runDir, finished: false, stagesTrained: trained, stagesSkipped: skipped, failed: e.message }, i);
      }
    }
  }

  let report: ReportResult | null = null;
  if (results.every((r) => r.finished)) {
    const [first, ...others] = results;
    // Each run's series in the compare figures is named by its axis values.
    report = await writeReport(first.runDir, { outDir: reportDir, compare: others.map((r) => r.runDir), labels: results.map((r) => r.label) });
    for (const w of report.warnings) warn(w);
  }
  // A report of an earlier, finished sweep with these runs would disagree with a sweep.json that has none.
  if (!report) removeReport(reportDir);
  const sweepJson = path.join(reportDir, SWEEP_JSON);
  writeJsonAtomic(sweepJson, {
    sweep: sweep.hash,
    ...(opts.source ? { source: path.resolve(opts.source) } : {}),
    axes: sweep.axisValues,
    base: sweep.base,
    report: report?.html ?? null,
    runs: results.map(({ stagesTrained: _t, stagesSkipped: _s, enqueued: _e, ...r }) => r),
  });
  return { sweep: sweep.hash, reportDir, sweepJson, runs: results, report, warnings };
}

/** The error that the sweep's failed runs make (`lth sweep` exits with it after its results), or null. */
export function failedRunsError(result: SweepResult, where: string): LthError | null {
  const failed = result.runs.filter((r) => r.failed !== undefined);
  if (!failed.length) return null;
  return new LthError(`${where}: ${failed.length} of ${result.runs.length} runs failed (${result.sweepJson} lists them; the others are kept, and running the sweep again trains only what is missing):\n${failed.map((r) => `${r.label}: ${r.failed}`).join('\n')}`);
}

/**
 * That the report directory can take this sweep's results before any run trains: it is (or
 * can be made) a writable directory, and it holds no other sweep's sweep.json.
 */
function checkReportDir(reportDir: string, hash: string, where: string): void {
  const file = path.join(reportDir, SWEEP_JSON);
  if (fs.existsSync(file)) {
    const other = readStoreJson<{ sweep?: unknown }>(file).sweep;
    if (other !== hash) {
      throw new LthError(`${where}: ${reportDir} holds the results of another sweep (${String(other)}); give --report a directory of its own, or remove them first`);
    }
  }
  fs.mkdirSync(reportDir, { recursive: true });
  fs.accessSync(reportDir, fs.constants.W_OK);
}

function isResolved(spec: unknown): spec is ResolvedSweep {
  return typeof spec === 'object' && spec !== null && Array.isArray((spec as ResolvedSweep).runs) && typeof (spec as ResolvedSweep).hash === 'string';
}
