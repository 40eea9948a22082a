import { watchStop } from '../backend/index.js';
import { LthError } from '../core/errors.js';
import type { Schema } from '../core/hparams.js';
import { describeSweep, defaultReportDir, failedRunsError, loadSweep, queueExecutor, runSweep } from '../sweep/index.js';
import { helpText, parseArgs } from './args.js';
import { Progress, bar, formatEta } from './progress.js';
import { SETTINGS_SCHEMA, contextFrom, describeContext } from './settings.js';

const SWEEP_SCHEMA = {
  root: { type: 'string', help: "directory holding all runs (default: the file's base.root, else ./lth-runs)" },
  report: { type: 'string', help: 'directory for the combined report and sweep.json (default: <root>/sweep-<hash of the sweep>)' },
  dryRun: { type: 'boolean', help: 'list the runs (label, hash, stages, how many done) and train nothing', default: false },
  queue: { type: 'string', help: 'submit the runs to the queue at this URL (redis://host:port) instead of running them here' },
  wait: { type: 'boolean', help: 'with --queue: wait until every run has finished, then write the report', default: false },
  ...SETTINGS_SCHEMA,
} as const satisfies Schema;

const USAGE = `Usage: lth sweep FILE [--root DIR] [--report DIR] [--dry-run] [--queue URL [--wait]]

Expands a sweep file (.json, .yaml or .yml: a base configuration and axes) into lottery
runs, one per combination of the axes' values, runs them one after another (a finished
run trains nothing again), and writes one report comparing them, with sweep.json. See
docs/sweep.md. Example file:

  base: { steps: 3000it, levels: 5, branches: [reinit] }
  axes:
    rate: [0.1, 0.2, 0.3]
    rewindStep: [0it, 500it]
  replicates: 3`;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** `lth sweep`: parses its flags, checks and expands the file, runs or lists the runs, writes the report. */
export async function cmdSweep(argv: string[]): Promise<void> {
  const { values, positional, common } = parseArgs(argv, SWEEP_SCHEMA, {}, true);
  if (common.help) {
    console.log(helpText(USAGE, SWEEP_SCHEMA));
    return;
  }
  if (positional.length !== 1) throw new LthError(`sweep: expected one sweep file, got ${positional.length ? positional.join(' ') : 'none'}. ${USAGE.split('\n')[0]}`);
  const file = positional[0];
  const dryRun = values.dryRun === true, wait = values.wait === true;
  const queue = values.queue as string | undefined;
  const reportFlag = values.report as string | undefined;
  if (wait && queue === undefined) throw new LthError('sweep: --wait waits for the runs of --queue URL; without --queue the runs are run here');
  const context = contextFrom(values);
  const sweep = loadSweep(file, { root: values.root as string | undefined });
  const reportDir = reportFlag ?? defaultReportDir(sweep);
  const total = sweep.runs.length;

  if (dryRun) {
    const d = describeSweep(sweep, reportDir, file);
    if (common.json) {
      process.stdout.write(`${JSON.stringify(d)}\n`);
      return;
    }
    console.log(`sweep ${d.sweep}: ${total} run${total === 1 ? '' : 's'} (${sweep.axes.join(' x ')}); report into ${reportDir}`);
    const width = Math.max(...d.runs.map((r) => r.label.length));
    for (const r of d.runs) console.log(`${r.label.padEnd(width)}  ${r.runDir}  ${r.stages} stages${r.done ? `, ${r.done} done` : ''}`);
    return;
  }

  const progress = new Progress(common.json);
  const execute = queue === undefined ? undefined : await queueExecutor(queue, wait, (run, p) => {
    progress.update(`${bar(p.done / p.stages)} ${run.label}: ${p.done}/${p.stages} stages done, ${p.queued} queued, ${Object.values(p.running).flat().length} running`);
  });
  const each = (f: (h: (typeof sweep.runs)[number]['hparams']) => string) => [...new Set(sweep.runs.map((r) => f(r.hparams)))].join(', ');
  progress.log(`lth sweep: ${file}: ${total} run${total === 1 ? '' : 's'} (${sweep.axes.join(' x ')}), ${each((h) => h.training.model)} on ${each((h) => h.training.dataset)}, ${queue ? `submitted to a queue${wait ? ', waiting for every run' : ''}` : describeContext(context)}`);
  const started = Date.now();
  const lastLevels = new Map<string, { density: number; accuracy: number }>();
  const result = await runSweep(sweep, {
    source: file, reportDir, context, stopRequested: watchStop(), execute,
    onWarning: (m) => process.stderr.write(`lth: warning: ${m}\n`),
    onRun: (run, i) => { if (!execute) progress.log(`run ${i + 1}/${total} ${run.label}  (${run.runDir})`); },
    onStage: (run, s, skipped) => {
      if (!skipped) progress.log(`  finished: replicate ${s.replicate} level ${s.level}/${run.hparams.levels} ${s.stage.padEnd(12)} density ${pct(s.density).padStart(6)}  early stop it ${String(s.earlyStopIteration).padStart(6)}  test acc ${pct(s.earlyStopTestAccuracy)}  (${s.seconds.toFixed(1)} s)`);
    },
    onProgress: (run, p) => {
      const i = sweep.runs.indexOf(run);
      const elapsed = (Date.now() - started) / 1000;
      progress.update(`${bar(i / total)} run ${i + 1}/${total} ${run.label}  replicate ${p.replicate} level ${p.level}/${run.hparams.levels} ${p.stage}  it ${p.point.iteration}/${p.iterations}  val acc ${pct(p.point.valAccuracy)}  ${formatEta(elapsed)} elapsed`);
    },
    onRunEnd: (run, o, i) => {
      const what = o.failed !== undefined ? 'failed' : execute
        ? o.finished ? 'finished on the queue' : `submitted (${o.enqueued ?? 0} stage(s) enqueued)`
        : o.stagesTrained === 0 ? `done already (${o.stagesSkipped} stages)` : `${o.stagesTrained} stage(s) trained${o.stagesSkipped ? `, ${o.stagesSkipped} done already` : ''}`;
      progress.log(`run ${i + 1}/${total} ${run.label}: ${what}`);
      const a = o.summary?.aggregate[o.summary.aggregate.length - 1];
      if (a) lastLevels.set(run.hash, { density: a.density.mean, accuracy: a.main.earlyStopTestAccuracy.mean });
    },
  });
  // The results first, then the failed runs' error (exit status 2).
  const failure = failedRunsError(result, `sweep: ${file}`);
  if (common.json) {
    process.stdout.write(`${JSON.stringify({ sweep: result.sweep, reportDir: result.reportDir, sweepJson: result.sweepJson, report: result.report?.html ?? null, runs: result.runs, warnings: result.warnings })}\n`);
    if (failure) throw failure;
    return;
  }
  const width = Math.max(5, ...result.runs.map((r) => r.label.length));
  console.log(`\n${'run'.padEnd(width)}  hash              weights left  test acc at early stop (mean)`);
  for (const r of result.runs) {
    const last = lastLevels.get(r.hash);
    console.log(`${r.label.padEnd(width)}  ${r.hash}  ${(last ? pct(last.density) : '-').padStart(12)}  ${last ? pct(last.accuracy) : r.finished ? '-' : 'not finished'}`);
  }
  if (result.report) console.log(`\nreport: ${result.report.html}`);
  else if (!failure) console.log(`\nsubmitted; the same command with --wait follows the runs (submitting nothing twice) and writes the report once they have finished`);
  console.log(`runs:   ${result.sweepJson}`);
  if (failure) throw failure;
}
