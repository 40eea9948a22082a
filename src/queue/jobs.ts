import path from 'node:path';
import { LthError } from '../core/errors.js';

/** The BullMQ queue every stage job goes to. */
export const QUEUE_NAME = 'lth-stages';

/**
 * A job names a stage by its run's hash and its path inside the run, never by a file-system
 * path: a worker finds it under its own --root. Nothing else is trusted from the queue.
 */
export interface StageJob {
  readonly v: 1;
  readonly run: string;
  readonly stage: string;
}

const RUN = /^[0-9a-f]{16}$/;
const STAGE = /^replicate_\d{1,6}\/level_\d{1,4}\/[a-z][a-z0-9_]{0,39}$/;

/** The job id of a stage: submitting a stage twice is one job. */
export function jobId(run: string, stage: string): string {
  return `${run}/${stage}`;
}

/** A job's payload checked against the schema: an LthError for anything else. */
export function parseStageJob(data: unknown): StageJob {
  const d = data as Partial<StageJob> | null;
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw new LthError('job: the payload is not an object');
  const keys = Object.keys(d).sort().join(',');
  if (keys !== 'run,stage,v') throw new LthError(`job: expected exactly the fields run, stage, v; got ${keys || 'none'}`);
  if (d.v !== 1) throw new LthError(`job: unknown payload version ${JSON.stringify(d.v)}`);
  if (typeof d.run !== 'string' || !RUN.test(d.run)) throw new LthError(`job: 'run' must be a run hash (16 hex digits), got ${JSON.stringify(d.run).slice(0, 80)}`);
  if (typeof d.stage !== 'string' || !STAGE.test(d.stage)) throw new LthError(`job: 'stage' must be a stage path replicate_R/level_K/BRANCH, got ${JSON.stringify(d.stage).slice(0, 80)}`);
  return { v: 1, run: d.run, stage: d.stage };
}

/** The stage's directory under `root`, which the schema keeps inside it. */
export function stageDirOf(root: string, job: StageJob): string {
  const dir = path.resolve(root, job.run, job.stage);
  if (!dir.startsWith(path.resolve(root) + path.sep)) throw new LthError('job: the stage is outside the worker\'s root');
  return dir;
}
