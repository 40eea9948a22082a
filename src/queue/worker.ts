import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { checkSettings } from '../backend/index.js';
import { LthError } from '../core/errors.js';
import { planLottery } from '../lottery/plan.js';
import { summarizeRun } from '../lottery/runner.js';
import { experimentAt } from '../lottery/verify.js';
import { writeFileOnce, writeJsonAtomic } from '../store/atomic.js';
import { FILES, readDone, sealDone, type StageResult } from '../store/layout.js';
import { removeCheckpoint } from '../training/checkpoint.js';
import { parseQueueUrl, redact } from './connection.js';
import { QUEUE_NAME, jobId, parseStageJob, stageDirOf, type StageJob } from './jobs.js';

/** A stage a user error stopped (bad data, a damaged input): what `lth status` shows. */

export interface WorkerOptions {
  readonly queue: string;
  /** The store: the directory holding the runs, the same one the submitter used (any path where this machine sees it). */
  readonly root: string;
  /** Stages run at once, each in a process of its own. */
  readonly concurrency?: number;
  /** How long a job's lock lasts without renewal (renewed at half of it while its stage runs). */
  readonly lockSeconds?: number;
  /** Run settings for the stages (--threads etc.), as the CLI's flags give them. */
  readonly settings?: Record<string, string | number>;
  readonly onEvent?: (e: WorkerEvent) => void;
}

export type WorkerEvent =
  | { kind: 'started'; job: string }
  | { kind: 'progress'; job: string; iteration: number; iterations: number }
  | { kind: 'committed'; job: string; seconds: number }
  | { kind: 'skipped'; job: string; why: string }
  | { kind: 'failed'; job: string; message: string; retried: boolean }
  /** What the stage said on its way (a checkpoint ignored or resumed). */
  | { kind: 'notice'; job: string; message: string; warning: boolean }
  /** What Redis or BullMQ reported (a connection lost and retried, a lock gone). */
  | { kind: 'queue'; message: string };

/** This worker's name in progress, logs and done.json: host and process id. */
export function workerId(): string {
  return `${os.hostname()}:${process.pid}`;
}

const STAGE_PROCESS = fileURLToPath(new URL('./stage-process.js', import.meta.url));

/**
 * Serves stage jobs until closed: each job's stage runs in a child process (training blocks
 * its event loop; this one keeps the job's lock alive). The stage is committed here — its
 * done.json written once, by whoever still holds the job — and the stages it unblocks are
 * enqueued. A stage that cannot be run (an LthError: bad data, a malformed job) fails for
 * good with its message, also written to the stage's failed.json; a crash is retried.
 */
export function startWorker(o: WorkerOptions): { worker: Worker; close: () => Promise<void> } {
  const address = parseQueueUrl(o.queue);
  const root = path.resolve(o.root);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new LthError(`worker: --root ${o.root} is not a directory`);
  // Settings every stage would refuse are refused now, not by failing other people's stages.
  checkSettings(o.settings ?? {});
  const lockDuration = Math.round(1000 * (o.lockSeconds ?? 30));
  const id = workerId();
  const emit = o.onEvent ?? (() => {});
  const queue = new Queue(QUEUE_NAME, { connection: address.redis });
  let running = 0;
  const processor = async (job: Job, token?: string) => {
    running++;
    try {
      return await processStage(job, token);
    } finally {
      running--;
    }
  };
  const processStage = async (job: Job, token?: string) => {
    let data: StageJob;
    try {
      data = parseStageJob(job.data);
      stageDirOf(root, data);
    } catch (e) {
      throw new UnrecoverableError((e as Error).message);
    }
    const name = jobId(data.run, data.stage);
    // A run this worker's store lacks: most likely another --root than the submitter's.
    if (!fs.existsSync(path.join(root, data.run, FILES.hparams))) {
      throw new UnrecoverableError(`run ${data.run} is not in this worker's store ${root} (no ${FILES.hparams}): a worker's --root must be the directory the submitter's --root names, as this machine sees it`);
    }
    emit({ kind: 'started', job: name });
    // Named at once, so that a follower shows who runs the stage before its first progress.
    void job.updateProgress({ worker: id, iteration: 0, iterations: 0 }).catch(() => {});
    const started = Date.now();
    const outcome = await runInChild(root, data, o.settings ?? {}, (p) => {
      emit({ kind: 'progress', job: name, ...p });
      void job.updateProgress({ worker: id, ...p }).catch(() => {});
    }, (message, warning) => emit({ kind: 'notice', job: name, message, warning }));
    const dir = stageDirOf(root, data);
    if (outcome.kind === 'error') {
      if (outcome.user) {
        writeJsonAtomic(path.join(dir, FILES.failed), { message: outcome.message, worker: id, at: new Date().toISOString() });
        throw new UnrecoverableError(outcome.message);
      }
      throw new Error(outcome.message);
    }
    if (!outcome.skipped) {
      // Commit only while holding the job: a worker that lost it (another one has the stage) writes nothing.
      if (!token || (await job.extendLock(token, lockDuration).catch(() => 0)) !== 1) {
        emit({ kind: 'skipped', job: name, why: 'not committed: this worker lost the job\'s lock, another worker has the stage' });
        throw new Error(`lost the lock of ${name}; another worker has the stage`);
      }
      const done: StageResult = sealDone({ ...outcome.result, worker: id });
      const file = path.join(dir, FILES.done);
      if (writeFileOnce(file, `${JSON.stringify(done, null, 2)}\n`)) {
        fs.rmSync(path.join(dir, FILES.failed), { force: true });
        removeCheckpoint(dir);
        emit({ kind: 'committed', job: name, seconds: (Date.now() - started) / 1000 });
      } else {
        emit({ kind: 'skipped', job: name, why: 'committed by another worker' });
      }
    } else {
      emit({ kind: 'skipped', job: name, why: 'already finished' });
    }
    await enqueueRunnable(queue, root, data.run);
    return { worker: id };
  };
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: address.redis, concurrency: o.concurrency ?? 1, lockDuration, stalledInterval: lockDuration, maxStalledCount: 10,
  });
  worker.on('failed', (job, err) => {
    if (job) emit({ kind: 'failed', job: String(job.id), message: redact(err.message), retried: job.attemptsMade < (job.opts.attempts ?? 1) && !(err instanceof UnrecoverableError) });
  });
  // Redis gone for a while (ioredis reconnects by itself), a lock gone: said once per distinct message.
  let lastError = '';
  worker.on('error', (err) => {
    const message = redact(err.message);
    if (message !== lastError) emit({ kind: 'queue', message });
    lastError = message;
  });
  worker.on('ready', () => { lastError = ''; });
  queue.on('error', () => {});
  // With no stage running there is nothing to wait for: closing at once also ends a worker
  // whose Redis is unreachable, which a graceful close would wait on for ever.
  return { worker, close: async () => { await worker.close(running === 0); await queue.close(); } };
}

type Outcome =
  | { kind: 'done'; skipped: boolean; result: StageResult }
  | { kind: 'error'; user: boolean; message: string };

function runInChild(
  root: string, job: StageJob, settings: Record<string, string | number>, onProgress: (p: { iteration: number; iterations: number }) => void,
  onNotice: (message: string, warning: boolean) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    // In a process group of its own: a Ctrl-C or a signal to the worker's group reaches the
    // worker alone, which lets its running stages finish (a stage whose worker is gone
    // stops at its next safe point by itself, checkpointed).
    const child = spawn(process.execPath, [STAGE_PROCESS, JSON.stringify({ root, run: job.run, stage: job.stage, settings })], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let outcome: Outcome | null = null;
    let buffered = '', stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let msg: { type?: string; [k: string]: unknown };
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.type === 'progress') onProgress({ iteration: Number(msg.iteration), iterations: Number(msg.iterations) });
        else if (msg.type === 'notice') onNotice(String(msg.message), msg.warning === true);
        else if (msg.type === 'done') outcome = { kind: 'done', skipped: msg.skipped === true, result: msg.result as StageResult };
        else if (msg.type === 'error') outcome = { kind: 'error', user: msg.user === true, message: String(msg.message) };
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => { stderr = (stderr + c).slice(-4000); });
    child.on('close', (code, signal) => {
      if (outcome && (outcome.kind === 'error' || code === 0)) resolve(outcome);
      else resolve({ kind: 'error', user: false, message: `the stage's process ended with ${signal ?? `status ${code}`}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
  });
}

/**
 * Enqueues every stage of run `run` that is not finished and whose dependencies all are
 * (a job per stage, its id the stage's: adding one that exists adds nothing). Returns the
 * number of jobs added.
 */
export async function enqueueRunnable(queue: Queue, root: string, run: string): Promise<number> {
  const runDir = path.join(root, run);
  const exp = experimentAt(runDir), { h } = exp;
  const finished = new Set<string>();
  const plan = planLottery(h);
  for (const s of plan) if (readDone(path.join(runDir, s.id))) finished.add(s.id);
  let added = 0;
  for (const s of plan) {
    if (finished.has(s.id) || !s.deps.every((d) => finished.has(d))) continue;
    const id = jobId(run, s.id);
    const existing = await queue.getJob(id);
    if (existing) {
      // A job completes only once its stage is committed: a completed one whose stage is not
      // finished lost its files since (removed, or another store under the same Redis), and
      // is added again. A stage failed for good (bad data the user has since fixed) is tried
      // again by a new submission only.
      if ((await existing.getState()) !== 'completed') continue;
      await existing.remove();
    }
    await queue.add('stage', { v: 1, run, stage: s.id }, { jobId: id, attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: false, removeOnFail: false });
    added++;
  }
  if (finished.size === plan.length) summarizeRun(exp);
  return added;
}
