import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { LthError } from '../core/errors.js';
import type { LotteryHparams } from '../lottery/hparams.js';
import { planLottery } from '../lottery/plan.js';
import { checkRun, prepareRun, summarizeRun } from '../lottery/runner.js';
import { experimentOf } from '../lottery/stage.js';
import type { LotterySummary } from '../lottery/summary.js';
import { readDone } from '../store/layout.js';
import { parseQueueUrl, redact } from './connection.js';
import { QUEUE_NAME, jobId } from './jobs.js';
import { enqueueRunnable } from './worker.js';

export interface SubmitOptions {
  readonly queue: string;
  /** Follow the run until it finishes (or a stage fails for good), then return its summary. */
  readonly wait?: boolean;
  /** Once the stages that can run are enqueued (before any waiting). */
  readonly onSubmitted?: (runDir: string, enqueued: number) => void;
  /** While waiting, about every second. */
  readonly onProgress?: (p: QueueProgress) => void;
  /** While waiting, every 5 s that the queue has not answered for 10 s or more: how long, and Redis's last error. */
  readonly onUnreachable?: (seconds: number, lastError: string) => void;
  /** How long to try to reach Redis before giving up with an error (default 10). */
  readonly connectSeconds?: number;
}

export interface QueueProgress {
  readonly stages: number;
  readonly done: number;
  readonly queued: number;
  /** Running stages by worker (host:pid). */
  readonly running: Record<string, string[]>;
  readonly failed: Array<{ stage: string; message: string }>;
}

export interface SubmitResult {
  readonly runDir: string;
  /** Jobs this submission added (0 when the same run was submitted before). */
  readonly enqueued: number;
  readonly summary?: LotterySummary;
  /** Stages that failed for good, with their errors (with --wait). */
  readonly failed: Array<{ stage: string; message: string }>;
}

/**
 * Submits a lottery run to the workers of a queue: writes its hyperparameters into the
 * store (which the workers share under their --root), then enqueues the stages that can
 * run now; the workers enqueue the rest as their dependencies finish. Finished stages are
 * never enqueued, and a stage's job id is its path, so submitting twice adds nothing.
 */
export async function submitRun(h: LotteryHparams, o: SubmitOptions): Promise<SubmitResult> {
  const exp = experimentOf(h);
  // Checked first, recorded once the queue is reached: an unreachable queue leaves no run behind.
  const splits = checkRun(h);
  const address = parseQueueUrl(o.queue);
  const queue = new Queue(QUEUE_NAME, { connection: address.redis });
  // Connections retry for ever (a Redis restarting mid-run only delays the run), so a queue
  // that cannot be reached at all is an error here, after a while, not a silent wait.
  let lastError = '';
  queue.on('error', (e) => { lastError = redact(e.message); });
  const seconds = o.connectSeconds ?? 10;
  let timer: NodeJS.Timeout | undefined;
  const reached = await Promise.race([
    queue.waitUntilReady().then(() => true, () => false),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), seconds * 1000); }),
  ]);
  clearTimeout(timer);
  if (!reached) {
    await queue.close().catch(() => {});
    throw new LthError(`--queue: cannot reach Redis at ${address.shown}${lastError ? ` (${lastError})` : ''} within ${seconds} s: is it running there, and is this the URL the workers use?`);
  }
  try {
    // A database the server does not have leaves ioredis on database 0, where the workers
    // of the URL asked for would never look: asked again here, it is an error.
    const db = address.redis.db ?? 0;
    if (db > 0) {
      const probe = new Redis({ ...address.redis, db: 0, lazyConnect: true, maxRetriesPerRequest: 1 });
      probe.on('error', () => {});
      try {
        await probe.connect();
        await probe.select(db);
      } catch (e) {
        throw new LthError(`--queue: Redis at ${address.shown} has no database ${db} (${redact((e as Error).message)}): its databases run from 0 to its 'databases' setting less one`);
      } finally {
        probe.disconnect();
      }
    }
    prepareRun(exp, splits);
    const run = path.basename(exp.runDir);
    // Stages that failed for good before (bad data since fixed) are tried again.
    let enqueued = 0;
    for (const s of planLottery(h)) {
      const job = readDone(path.join(exp.runDir, s.id)) ? undefined : await queue.getJob(jobId(run, s.id));
      if (job && (await job.getState()) === 'failed') {
        await job.retry();
        enqueued++;
      }
    }
    enqueued += await enqueueRunnable(queue, h.root, run);
    o.onSubmitted?.(exp.runDir, enqueued);
    if (!o.wait) return { runDir: exp.runDir, enqueued, failed: [] };
    // A Redis that goes away makes the queue's calls wait for it to come back: said while it lasts.
    let heard = Date.now();
    const watchdog = setInterval(() => {
      const quiet = (Date.now() - heard) / 1000;
      if (quiet >= 10) o.onUnreachable?.(quiet, lastError);
    }, 5000);
    try {
      for (;;) {
        const p = await queueProgress(queue, exp.runDir, run, h);
        heard = Date.now();
        o.onProgress?.(p);
        if (p.done === p.stages || p.failed.length) return { runDir: exp.runDir, enqueued, summary: summarizeRun(exp), failed: p.failed };
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      clearInterval(watchdog);
    }
  } finally {
    await queue.close();
  }
}

async function queueProgress(queue: Queue, runDir: string, run: string, h: LotteryHparams): Promise<QueueProgress> {
  const plan = planLottery(h);
  let done = 0, queued = 0;
  const running: Record<string, string[]> = {};
  const failed: Array<{ stage: string; message: string }> = [];
  for (const s of plan) {
    if (readDone(path.join(runDir, s.id))) {
      done++;
      continue;
    }
    const job = await queue.getJob(jobId(run, s.id));
    if (!job) continue;
    const state = await job.getState();
    if (state === 'active') {
      const worker = String((job.progress as { worker?: string } | undefined)?.worker ?? '?');
      (running[worker] ??= []).push(s.id);
    } else if (state === 'failed') {
      // Failed for good: BullMQ keeps a job it will try again waiting or delayed.
      failed.push({ stage: s.id, message: job.failedReason ?? 'failed' });
    } else if (state === 'waiting' || state === 'delayed' || state === 'prioritized') {
      queued++;
    }
  }
  return { stages: plan.length, done, queued, running, failed };
}
