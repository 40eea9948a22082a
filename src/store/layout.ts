import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { readStoreJson, sha256File } from './atomic.js';

/**
 * On-disk layout of a lottery run (names are frozen: other tools read them):
 *   <root>/<hash>/hparams.json
 *   <root>/<hash>/summary.json
 *   <root>/<hash>/replicate_<r>/level_<k>/<branch>/      (branch: main, reinit, random_prune, ...)
 *       hparams.json  mask.safetensors  model_init.safetensors  model_final.safetensors
 *       metrics.csv   done.json (written last: a stage without it is unfinished)
 * level_0/main may also hold model_rewind.safetensors (weights at the rewind step).
 * Tensors keep their shapes (masks too): a PyTorch user multiplies a weight by its mask as loaded.
 */
export const FILES = {
  hparams: 'hparams.json',
  summary: 'summary.json',
  mask: 'mask.safetensors',
  /** The mask a stage ends with when it changed as it trained (dynamic sparse training). */
  finalMask: 'mask_final.safetensors',
  init: 'model_init.safetensors',
  final: 'model_final.safetensors',
  rewind: 'model_rewind.safetensors',
  metrics: 'metrics.csv',
  done: 'done.json',
  /** Why a stage failed for good (a user's mistake: bad data, a damaged dependency, a diverged loss): its message, when, and on which worker. Removed when the stage finishes. */
  failed: 'failed.json',
} as const;

/** A stage's branch name ('main' or a control's): its directory. */
export type StageName = string;

/** A stage's path inside its run directory: replicate_<r>/level_<k>/<branch>. */
export function stagePath(replicate: number, level: number, stage: StageName): string {
  return `replicate_${replicate}/level_${level}/${stage}`;
}

export function stageDir(runDir: string, replicate: number, level: number, stage: StageName): string {
  return path.join(runDir, `replicate_${replicate}`, `level_${level}`, stage);
}

/** What a finished stage records in done.json. */
export interface StageResult {
  replicate: number;
  level: number;
  stage: StageName;
  /** Fraction of prunable weights remaining. */
  density: number;
  iterations: number;
  earlyStopIteration: number;
  earlyStopValLoss: number;
  earlyStopValAccuracy: number;
  earlyStopTestAccuracy: number;
  finalTestAccuracy: number;
  seconds: number;
  backend: string;
  /** The program that trained it ('graph', 'sparse_mlp', 'compact'); absent in stages of older versions. */
  program?: string;
  /** The run settings it was computed with (backend, simd, threads, sparse, fused). */
  numerics?: Record<string, string | number>;
  /** The lth version that computed it. */
  lth?: string;
  /** The worker (host:pid) that computed it, when a queue's worker did. */
  worker?: string;
  /** SHA-256 of every other file of the stage, by name, when done.json was written (absent in stages of older versions). */
  files?: Record<string, string>;
  /**
   * What a branch measured beyond training its network (Branch.analyse), e.g. the
   * 'stability' branch's {kind: 'instability', errorBarrier, orderSeeds, path: [{alpha,
   * testLoss, testError}]}.
   */
  analysis?: Record<string, unknown>;
  /**
   * The stage's training FLOPs (nn/flops.ts): as computed on its kernels (`actual`), and
   * for the same iterations of the dense network (`dense`). Absent in stages of older versions.
   */
  flops?: { actual: number; dense: number };
  /**
   * An early-bird search (--early-bird): the mask distance at each draw, and the iteration
   * where it fell below `epsilon` and training stopped (null: it never did; the stage trained
   * its whole budget).
   */
  earlyBird?: { epsilon: number; every: number; drawnAt: number | null; points: Array<{ iteration: number; distance: number }> };
  /** Dynamic sparse training (the rigl and set branches): updates made, connections regrown, and the seconds the updates took. */
  sparseTraining?: { method: string; updates: number; regrown: number; updateSeconds: number };
  /** SHA-256 of this record's JSON without `seal` (sealDone): its numbers as the stage wrote them (absent in stages of older versions). */
  seal?: string;
}

/** `done` without its seal, as the seal hashes it. */
function unsealed(done: StageResult): string {
  const { seal: _seal, ...rest } = done;
  return JSON.stringify(rest);
}

/** `done` with its seal (computed anew: a worker adds its name to the stage's record before committing it). */
export function sealDone(done: StageResult): StageResult {
  const { seal: _seal, ...rest } = done;
  return { ...rest, seal: createHash('sha256').update(unsealed(done)).digest('hex') };
}

/** A stage's done.json, or null while the stage is unfinished; a damaged done.json is an LthError naming it. */
export function readDone(dir: string): StageResult | null {
  const file = path.join(dir, FILES.done);
  if (!fs.existsSync(file)) return null;
  const done = readStoreJson<StageResult>(file, "; 'lth verify <run-dir> --repair' redoes its stage");
  if (!done || typeof done !== 'object' || typeof done.level !== 'number' || typeof done.stage !== 'string') {
    throw new LthError(`${file} is damaged (not a stage's results); 'lth verify <run-dir> --repair' redoes its stage`);
  }
  return done;
}

/**
 * A stage's failed.json (the error that stopped it for good, and the worker it stopped on),
 * or null where it has none; a damaged one reads as a failure that says so.
 */
export function readFailed(dir: string): { message: string; worker?: string } | null {
  const file = path.join(dir, FILES.failed);
  if (!fs.existsSync(file)) return null;
  try {
    const f = JSON.parse(fs.readFileSync(file, 'utf8')) as { message?: unknown; worker?: unknown };
    return { message: typeof f.message === 'string' ? f.message : 'failed', ...(typeof f.worker === 'string' ? { worker: f.worker } : {}) };
  } catch (e) {
    return { message: `(${file} is damaged: ${(e as Error).message})` };
  }
}

/**
 * What is wrong with a finished stage's files: done.json must hold the numbers it was
 * sealed with, and each file it lists must be there with the SHA-256 it had when the stage
 * finished. Empty when the stage is whole (or when its done.json, written by an older
 * version, has no seal and lists no files). `only`: the files to check, where not all.
 */
export function verifyStage(dir: string, done: StageResult, only?: readonly string[]): string[] {
  const problems: string[] = [];
  if (done.seal !== undefined && createHash('sha256').update(unsealed(done)).digest('hex') !== done.seal) {
    problems.push(`${path.join(dir, FILES.done)} was changed since the stage finished (its numbers differ from its seal)`);
  }
  for (const [name, sum] of Object.entries(done.files ?? {})) {
    if (only && !only.includes(name)) continue;
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) problems.push(`${file} is missing`);
    else if (sha256File(file) !== sum) problems.push(`${file} is damaged (its SHA-256 differs from the one recorded when the stage finished)`);
  }
  return problems;
}

/** done.json's `files`: the SHA-256 of every file now in a stage directory but done.json, failed.json (removed once the stage finishes) and temporaries. */
export function stageChecksums(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (name === FILES.done || name === FILES.failed || name.includes('.tmp-')) continue;
    out[name] = sha256File(path.join(dir, name));
  }
  return out;
}

/** One row of metrics.csv per (iteration, metric name). */
export interface MetricRow {
  iteration: number;
  name: string;
  value: number;
}

export function readMetrics(dir: string): MetricRow[] {
  const file = path.join(dir, FILES.metrics);
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').trim().split('\n').slice(1).map((line) => {
    const [iteration, name, value] = line.split(',');
    return { iteration: Number(iteration), name, value: Number(value) };
  });
}

/** Every finished stage of a run, in replicate, level, branch-name order. */
export function listStages(runDir: string): StageResult[] {
  const out: StageResult[] = [];
  const num = (s: string, prefix: string) => Number(s.slice(prefix.length));
  const dirs = (p: string, prefix: string) =>
    fs.existsSync(p) ? fs.readdirSync(p).filter((d) => d.startsWith(prefix) && /^\d+$/.test(d.slice(prefix.length))).sort((a, b) => num(a, prefix) - num(b, prefix)) : [];
  for (const rep of dirs(runDir, 'replicate_')) {
    for (const lvl of dirs(path.join(runDir, rep), 'level_')) {
      const level = path.join(runDir, rep, lvl);
      for (const stage of fs.readdirSync(level).sort()) {
        const done = readDone(path.join(level, stage));
        if (done) out.push(done);
      }
    }
  }
  return out;
}

/** The run directory a stage's directory (replicate_<r>/level_<k>/<branch>) or one of its parents lies in, if dir is one of those. */
function enclosingRun(dir: string): string | null {
  const parts = path.resolve(dir).split(path.sep);
  let at = -1;
  for (let i = Math.max(1, parts.length - 3); i < parts.length; i++) if (/^replicate_\d+$/.test(parts[i])) at = i;
  if (at < 1) return null;
  const run = parts.slice(0, at).join(path.sep) || path.sep;
  return fs.existsSync(path.join(run, FILES.hparams)) ? path.relative(process.cwd(), run) || '.' : null;
}

/** That dir is not a stage directory of a run (or a replicate's or level's): an LthError naming the run to give instead, `what` prefixed. */
export function notInsideRun(dir: string, what = ''): void {
  const run = enclosingRun(dir);
  if (run) throw new LthError(`${what}${dir} is inside the lottery run ${run}: give the run directory itself`);
}
