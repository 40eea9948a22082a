import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { readStoreJson } from '../store/atomic.js';
import { FILES, notInsideRun, readDone, verifyStage } from '../store/layout.js';
import { lockRun } from '../store/run-lock.js';
import { hashOf } from '../core/hparams.js';
import { runHash, runIdentity, spelledRunIdentity, type LotteryHparams } from './hparams.js';
import type { Experiment } from './stage.js';
import { planLottery } from './plan.js';
import { DAMAGED_RUN_HPARAMS, runExperiment, type LotteryOptions } from './runner.js';
import type { LotterySummary } from './summary.js';

export interface StageCheck {
  readonly id: string;
  readonly state: 'whole' | 'damaged' | 'unfinished';
  readonly problems: readonly string[];
}

/** The hyperparameters a run directory was made with (its hparams.json), its root being where it is now. */
export function runOf(runDir: string): LotteryHparams {
  const file = path.join(runDir, FILES.hparams);
  notInsideRun(runDir);
  if (!fs.existsSync(runDir)) throw new LthError(`${runDir} does not exist (run directories are <root>/<hash>, see 'lth ls')`);
  if (!fs.existsSync(file)) throw new LthError(`${runDir} is not a lottery run directory (expected ${FILES.hparams} in it; run directories are <root>/<hash>, see 'lth ls')`);
  const hp = readStoreJson<{ resolved?: LotteryHparams }>(file, DAMAGED_RUN_HPARAMS);
  if (!hp.resolved || typeof hp.resolved.levels !== 'number') throw new LthError(`${file} is not a lottery run's hyperparameters`);
  const h: LotteryHparams = { ...hp.resolved, root: path.dirname(path.resolve(runDir)) };
  const name = path.basename(path.resolve(runDir));
  if (runHash(h) !== name && hashOf(spelledRunIdentity(h)) !== name) {
    throw new LthError(`${runDir}: its hyperparameters name another run (${runHash(h)}): the directory was renamed, or ${file} was changed`);
  }
  return h;
}

/** The experiment of the run in runDir, under that directory's name (which experimentOf would not choose where runs of both names exist). */
export function experimentAt(runDir: string): Experiment {
  const h = runOf(runDir), name = path.basename(path.resolve(runDir));
  return { h, runDir: path.join(h.root, name), identity: runHash(h) === name ? runIdentity(h) : spelledRunIdentity(h) };
}

/** Every stage of a run's plan with its state: whole, damaged (a file missing or changed, or done.json unreadable) or unfinished. */
export function verifyRun(runDir: string): StageCheck[] {
  const h = runOf(runDir);
  const plan = planLottery(h);
  const checks = plan.map((s): StageCheck => {
    const dir = path.join(runDir, s.id);
    try {
      const done = readDone(dir);
      if (!done) return { id: s.id, state: 'unfinished', problems: [] };
      const problems = verifyStage(dir, done);
      return { id: s.id, state: problems.length ? 'damaged' : 'whole', problems };
    } catch (e) {
      if (!(e instanceof LthError)) throw e;
      return { id: s.id, state: 'damaged', problems: [e.message] };
    }
  });
  // An unfinished stage that finished ones were computed from was finished once: its files are gone.
  const byId = new Map(checks.map((c) => [c.id, c]));
  for (const s of plan) {
    if (byId.get(s.id)!.state === 'unfinished') continue;
    for (const d of s.deps) {
      const dep = byId.get(d)!;
      if (dep.state === 'unfinished') byId.set(d, { id: d, state: 'damaged', problems: [`${path.join(runDir, d)} is gone or unfinished, but ${s.id}, computed from it, is finished`] });
    }
  }
  return plan.map((s) => byId.get(s.id)!);
}

/**
 * Redoes exactly the damaged stages of a run and every stage that depends on one of them,
 * directly or not (their results were computed from damaged files or will be recomputed
 * from redone ones), then finishes the run: the same stages give the same bytes, so the
 * repaired run equals the undamaged one. Returns the ids removed and redone.
 */
export function repairRun(runDir: string, opts: LotteryOptions = {}): { redone: string[]; summary: LotterySummary } {
  const exp = experimentAt(runDir), { h } = exp;
  const release = lockRun(runDir, 'repairing its stages');
  try {
    const damaged = new Set(verifyRun(runDir).filter((c) => c.state === 'damaged').map((c) => c.id));
    const redo = new Set<string>();
    for (const s of planLottery(h)) if (damaged.has(s.id) || s.deps.some((d) => redo.has(d))) redo.add(s.id);
    for (const id of redo) fs.rmSync(path.join(runDir, id), { recursive: true, force: true });
    const { summary } = runExperiment(exp, opts);
    return { redone: [...redo], summary };
  } finally {
    release();
  }
}
