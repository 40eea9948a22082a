/**
 * The commands of distributed runs: `lth lottery --queue` (submit), `lth worker` and
 * `lth status`. In a module of their own so that only they load the queue's client.
 */
import path from 'node:path';
import { LthError } from '../core/errors.js';
import type { Schema } from '../core/hparams.js';
import type { LotteryHparams } from '../lottery/hparams.js';
import type { LotterySummary } from '../store/summary.js';
import { parseQueueUrl } from '../queue/connection.js';
import { submitRun, type QueueProgress } from '../queue/submit.js';
import { runStatus } from '../queue/status.js';
import { startWorker, workerId } from '../queue/worker.js';
import { helpText, parseArgs } from './args.js';
import { Progress, bar } from './progress.js';
import { SETTINGS_SCHEMA } from './settings.js';

/** Submits `h`; with `wait`, follows it and returns its summary (null without). */
export async function submitLottery(h: LotteryHparams, queue: string, wait: boolean, json: boolean): Promise<{ runDir: string; summary: LotterySummary } | null> {
  const shown = parseQueueUrl(queue).shown;
  const progress = new Progress(json);
  const line = (p: QueueProgress) => {
    const running = Object.entries(p.running).map(([w, s]) => `${w}: ${s.length}`).join(', ');
    return `${bar(p.done / p.stages)} ${p.done}/${p.stages} stages done, ${p.queued} queued, ${Object.values(p.running).flat().length} running${running ? ` (${running})` : ''}`;
  };
  const r = await submitRun(h, {
    queue, wait, onProgress: (p) => progress.update(line(p)),
    onSubmitted: (runDir, enqueued) => progress.log(`submitted ${runDir} to ${shown}: ${enqueued} stage(s) enqueued${enqueued === 0 ? ' (all finished or already queued)' : ''}`),
    onUnreachable: (seconds, why) => progress.log(`the queue at ${shown} has not answered for ${Math.round(seconds)} s${why ? ` (${why})` : ''}; waiting for it (the workers go on with their stages)`),
  });
  if (r.failed.length) {
    const list = r.failed.map((f) => `failed: ${f.stage}: ${f.message}`).join('\n');
    throw new LthError(`${r.failed.length} stage(s) of ${r.runDir} failed ('lth status ${r.runDir}' lists them; fix the cause and submit again):\n${list}`);
  }
  if (!wait) {
    if (json) process.stdout.write(`${JSON.stringify({ runDir: r.runDir, enqueued: r.enqueued })}\n`);
    else console.log(`follow it with: lth status ${r.runDir}`);
    return null;
  }
  return { runDir: r.runDir, summary: r.summary! };
}

const WORKER_SCHEMA = {
  queue: { type: 'string', help: 'the queue: redis://[user:password@]host:port[/db], rediss:// for TLS' },
  root: { type: 'string', help: 'the store: the directory of runs the submitters use, as this machine sees it' },
  concurrency: { type: 'integer', help: 'stages run at once, each in its own process', default: 1 },
  lockSeconds: { type: 'number', help: 'how long a stage\'s job stays locked without word from this worker (renewed at half of it); a killed worker\'s stages go back to the queue after it', default: 30 },
  ...SETTINGS_SCHEMA,
} as const satisfies Schema;

/** `lth worker`: serves stage jobs until SIGINT/SIGTERM (then finishes nothing new and stops). */
export async function cmdWorker(argv: string[]): Promise<void> {
  const usage = 'Usage: lth worker --queue redis://HOST:PORT --root DIR [--concurrency N] [run settings]';
  const { values, common } = parseArgs(argv, WORKER_SCHEMA);
  if (common.help) {
    console.log(helpText(usage, WORKER_SCHEMA));
    return;
  }
  if (values.queue === undefined || values.root === undefined) throw new LthError(`worker: --queue and --root are required. ${usage}`);
  const concurrency = (values.concurrency ?? WORKER_SCHEMA.concurrency.default) as number;
  const lockSeconds = (values.lockSeconds ?? WORKER_SCHEMA.lockSeconds.default) as number;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new LthError(`--concurrency must be a positive integer, got ${concurrency}`);
  if (!(lockSeconds >= 1)) throw new LthError(`--lock-seconds must be at least 1, got ${lockSeconds}`);
  const settings: Record<string, string | number> = {};
  for (const k of Object.keys(SETTINGS_SCHEMA)) if (values[k] !== undefined) settings[k] = values[k] as string | number;
  const address = parseQueueUrl(String(values.queue));
  const log = (m: string) => { if (!common.json) process.stderr.write(`${m}\n`); else process.stdout.write(`${JSON.stringify({ worker: workerId(), message: m })}\n`); };
  const { close } = startWorker({
    queue: String(values.queue), root: String(values.root), concurrency, lockSeconds, settings,
    onEvent: (e) => {
      if (e.kind === 'progress') return;
      if (e.kind === 'queue') log(`lth worker ${workerId()}: queue ${address.shown}: ${e.message}`);
      else if (e.kind === 'started') log(`lth worker ${workerId()}: started ${e.job}`);
      else if (e.kind === 'committed') log(`lth worker ${workerId()}: committed ${e.job} (${e.seconds.toFixed(1)} s)`);
      else if (e.kind === 'skipped') log(`lth worker ${workerId()}: ${e.job}: ${e.why}`);
      else if (e.kind === 'notice') log(`lth worker ${workerId()}: ${e.warning ? 'warning: ' : ''}${e.message}`);
      else log(`lth worker ${workerId()}: failed ${e.job}${e.retried ? ' (to be retried)' : ''}: ${e.message}`);
    },
  });
  log(`lth worker ${workerId()}: serving ${address.shown}, store ${path.resolve(String(values.root))}, ${concurrency} at a time`);
  await new Promise<void>((resolve) => {
    const stop = () => { log(`lth worker ${workerId()}: stopping (running stages finish first; a second signal stops at once)`); process.once('SIGINT', () => process.exit(130)); resolve(); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await close();
}

/** `lth status RUN`: each stage done, running, failed (with its message) or to run. */
export function cmdStatus(argv: string[]): void {
  const { positional, common } = parseArgs(argv, {}, {}, true);
  if (common.help) {
    console.log('Usage: lth status <run-dir> [--json]\n\nA run\'s stages: how many are done, started (running, or stopped midway), failed or to run, then each one not done (a failed one with its error).\n\n  --json  print one JSON object, every stage with its state (and worker, and error), as the last stdout line');
    return;
  }
  if (positional.length !== 1) throw new LthError(`status: expected one run directory, got ${positional.length ? positional.join(' ') : 'none'}`);
  const runDir = positional[0];
  const stages = runStatus(runDir);
  if (common.json) {
    process.stdout.write(`${JSON.stringify({ runDir, stages })}\n`);
    return;
  }
  const count = (state: string) => stages.filter((s) => s.state === state).length;
  console.log(`${runDir}: ${count('done')} done, ${count('started')} started (running, or stopped midway), ${count('failed')} failed, ${count('damaged') ? `${count('damaged')} damaged, ` : ''}${count('to run')} to run (of ${stages.length})`);
  for (const s of stages) if (s.state !== 'done') console.log(`${s.state.padEnd(7)} ${s.id}${'message' in s && s.message ? `: ${s.message}` : ''}`);
  if (count('failed') || count('damaged')) process.exitCode = 1;
}
