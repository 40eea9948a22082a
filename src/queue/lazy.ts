import type { LotteryHparams } from '../lottery/hparams.js';
import type { SubmitOptions, SubmitResult } from './submit.js';
import type { WorkerOptions } from './worker.js';

// The queue's functions for the public API, loading its client (BullMQ, ioredis) on first
// use: a program that never talks to a queue should not pay for loading it.

/** Submits a lottery run to the workers of a queue (`lth lottery --queue`); see queue/submit.ts. */
export async function submitRun(h: LotteryHparams, o: SubmitOptions): Promise<SubmitResult> {
  return (await import('./submit.js')).submitRun(h, o);
}

/** Serves a queue's stage jobs until `close` (`lth worker`); see queue/worker.ts. */
export async function startWorker(o: WorkerOptions): Promise<{ close: () => Promise<void> }> {
  const { close } = (await import('./worker.js')).startWorker(o);
  return { close };
}
