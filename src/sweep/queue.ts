import { LthError } from '../core/errors.js';
import type { QueueProgress } from '../queue/submit.js';
import type { SweepExecutor } from './run.js';
import type { SweepRun } from './spec.js';

/**
 * The executor of `lth sweep --queue URL`: submits each run to the workers of the queue at
 * `url` (submitRun) and, with `wait`, follows each until it has finished. Every run is
 * submitted before any is waited for, so the workers take the stages of all of them.
 */
export async function queueExecutor(url: string, wait: boolean, onProgress?: (run: SweepRun, p: QueueProgress) => void): Promise<SweepExecutor> {
  // The queue's client (BullMQ, ioredis) is loaded only for a sweep submitted to one.
  const { submitRun } = await import('../queue/submit.js');
  (await import('../queue/connection.js')).parseQueueUrl(url); // a malformed URL is an error before anything is submitted
  return {
    submit: async (run) => submitRun(run.hparams, { queue: url, wait: false }),
    wait: !wait ? undefined : async (run) => {
      // Submitting again adds nothing (a stage's job id is its path): it follows the run.
      const r = await submitRun(run.hparams, { queue: url, wait: true, onProgress: onProgress && ((p) => onProgress(run, p)) });
      if (r.failed.length) {
        throw new LthError(`run ${run.label} (${r.runDir}): ${r.failed.length} stage(s) failed on the queue, e.g. ${r.failed[0].stage}: ${r.failed[0].message}; once fixed, the same command submits them again`);
      }
      return { finished: r.summary?.complete === true, summary: r.summary };
    },
  };
}
