import { LthError } from '../core/errors.js';
import type { SweepExecutor } from './run.js';
import type { SweepRun } from './spec.js';

/** How far a run submitted to a queue has got (the queue's submitRun reports it while waiting). */
export interface QueueProgress {
  readonly stages: number;
  readonly done: number;
  readonly queued: number;
  readonly running: Record<string, string[]>;
}

/**
 * The executor of `lth sweep --queue URL`: submits each run to the workers of the queue at
 * `url` and, with `wait`, follows each until it has finished. This build has no queue yet:
 * the one place that says so.
 */
export async function queueExecutor(url: string, wait: boolean, onProgress?: (run: SweepRun, p: QueueProgress) => void): Promise<SweepExecutor> {
  void url; void wait; void onProgress;
  throw new LthError('--queue: distributed execution is not available in this build (no queue module); run the sweep without --queue to run it here');
}
