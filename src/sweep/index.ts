/** Sweeps: a base configuration and axes expanded into lottery runs, run, and reported together. */
export {
  MAX_SWEEP_RUNS, readSweepFile, resolveSweep, expandSweep, loadSweep, formatValue,
  type SweepSpec, type SweepRun, type ResolvedSweep, type ExpandOptions,
} from './spec.js';
export {
  SWEEP_JSON, runSweep, failedRunsError, describeSweep, defaultReportDir,
  type SweepOptions, type SweepResult, type SweepRunOutcome, type SweepJsonRun, type SweepExecutor,
} from './run.js';
export { queueExecutor } from './queue.js';
