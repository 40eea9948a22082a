#!/usr/bin/env node
import fs from 'node:fs';
import path from 'node:path';
import { LthError, Stopped } from '../core/errors.js';
import { LTH_VERSION } from '../core/version.js';
import { parseStep, stepToIterations } from '../core/steps.js';
import { watchStop } from '../backend/index.js';
import type { Schema } from '../core/hparams.js';
import { TRAINING_SCHEMA, resolveTraining } from '../training/hparams.js';
import { runTraining } from '../training/run.js';
import { SPARSE_TRAIN_SCHEMA, resolveSparseTrain } from '../dynamic/hparams.js';
import { sparseTrainingSetup } from '../dynamic/setup.js';
import { LOTTERY_SCHEMA, resolveLottery, type LotteryHparams } from '../lottery/hparams.js';
import type { LotterySummary } from '../store/summary.js';
import { checkRun, checkRunData, describePlan, listRuns, runLottery } from '../lottery/runner.js';
import { experimentOf } from '../lottery/stage.js';
import { repairRun, verifyRun } from '../lottery/verify.js';
import { runStability } from '../lottery/stability.js';
import { exportStage, type ExportFormat } from '../export/index.js';
import { helpText, parseArgs } from './args.js';
import { SETTINGS_SCHEMA, contextFrom, describeContext } from './settings.js';
import { Progress, bar, formatEta } from './progress.js';

const USAGE = `lth — the Lottery Ticket Hypothesis toolkit

Usage:
  lth train   [options]   train one network, dense or sparse (lth train --help)
  lth lottery [options]   find winning tickets by iterative magnitude pruning (lth lottery --help)
  lth stability [options] instability analysis: two copies trained from one start, the
                          test error on the line between them (lth stability --help)
  lth ls      [--root D]  list lottery runs with their hyperparameters and progress
  lth report  <run-dir> [--out DIR] [--compare RUN2,...]
                          figures and an HTML report of a run (finished or not)
  lth verify  <run-dir> [--repair]
                          check every finished stage's files against the checksums in its
                          done.json; --repair redoes the damaged stages and those after them
  lth export  <run-dir> --level K --out FILE [--format onnx|safetensors|pt]
                          one stage's network (the ticket by default) as a standalone model
  lth worker  --queue redis://HOST:PORT --root DIR [--concurrency N]
                          run the stages of lotteries submitted with lth lottery --queue
  lth status  <run-dir>   how many stages of a run are done, started, failed, to run, and each
                          one not done (a failed one with its error); --json: every stage
  lth sweep   FILE [options]  lottery runs over axes of hyperparameters, one report (lth sweep --help)
  lth --version           the version of lth

Run settings (how lth computes, never what; recorded with every stage): --threads N,
--backend native|reference, --simd avx512|avx2|scalar, --sparse auto|on|off,
--fused auto|off, or the environment variables LTH_THREADS, LTH_BACKEND, LTH_SIMD,
LTH_SPARSE, LTH_FUSED (a flag wins over its variable).`;

function printJson(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const TRAIN_EXTRA = { out: { type: 'string', help: 'write hparams, metrics, weights and summary here' }, ...SPARSE_TRAIN_SCHEMA, ...SETTINGS_SCHEMA } as const satisfies Schema;

/**
 * Removes dir and its parents up to top (the first directory this command created) while
 * they are empty: a training that failed before writing anything (bad data, a stop) leaves
 * no empty --out behind.
 */
function removeEmptyDirs(dir: string, top: string): void {
  const stop = path.resolve(top);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (!fs.existsSync(d) || fs.readdirSync(d).length > 0) return;
    fs.rmdirSync(d);
    if (d === stop || path.dirname(d) === d) return;
  }
}

function cmdTrain(argv: string[]): void {
  const { values, common } = parseArgs(argv, TRAINING_SCHEMA, TRAIN_EXTRA);
  if (common.help) {
    console.log(helpText('Usage: lth train [options]', { ...TRAINING_SCHEMA, ...TRAIN_EXTRA }));
    return;
  }
  const out = values.out as string | undefined;
  delete values.out;
  const context = contextFrom(values);
  const sparse = resolveSparseTrain(values);
  for (const k of Object.keys(SPARSE_TRAIN_SCHEMA)) delete values[k];
  const h = resolveTraining(values);
  // Where the results go must be writable, and hold no earlier results, before any training starts.
  let created: string | undefined;
  if (out) {
    created = fs.mkdirSync(out, { recursive: true });
    fs.accessSync(out, fs.constants.W_OK);
    if (fs.existsSync(path.join(out, 'summary.json'))) throw new LthError(`--out ${out} already holds a training's results (summary.json): choose another directory, or remove them first`);
  }
  const progress = new Progress(common.json);
  const sparsely = sparse ? `, ${sparse.method} at density ${sparse.density} (${sparse.densityRule}, update every ${sparse.updateEvery} it, drop fraction ${sparse.dropFraction} to ${sparse.updateEnd} of the budget)` : '';
  progress.log(`lth train: ${h.model} on ${h.dataset}, ${h.steps}, batch ${h.batchSize}, ${h.optimizer} lr ${h.lr}, seed ${h.seed}${sparsely}, ${describeContext(context)}`);
  const started = Date.now();
  let result: ReturnType<typeof runTraining>;
  try {
    result = runTraining(h, {
      out, context, stopRequested: watchStop(), ...(sparse ? { sparse: sparseTrainingSetup(sparse, h.seed, context) } : {}),
      onEval: (p, total) => {
        const elapsed = (Date.now() - started) / 1000;
        const eta = p.iteration > 0 ? (elapsed / p.iteration) * (total - p.iteration) : NaN;
        progress.update(`${bar(p.iteration / total)} it ${p.iteration}/${total}  val loss ${p.valLoss.toFixed(4)}  val acc ${(100 * p.valAccuracy).toFixed(2)}%  test acc ${(100 * p.testAccuracy).toFixed(2)}%  ETA ${formatEta(eta)}`, p.iteration === total);
      },
    });
  } catch (e) {
    if (out && created) removeEmptyDirs(out, created);
    // lth train has no stages: nothing of the stopped training is kept.
    if (e instanceof Stopped) throw new Stopped(e.reason, 'lth train keeps nothing of an unfinished training (lth lottery keeps and resumes its stages)');
    throw e;
  }
  const { curve, ...summary } = result;
  if (common.json) {
    printJson(summary);
    return;
  }
  progress.log('');
  console.log(`early stop (min validation loss) at iteration ${summary.earlyStopIteration}: val loss ${summary.earlyStopValLoss.toFixed(4)}, test accuracy ${(100 * summary.earlyStopTestAccuracy).toFixed(2)}%`);
  console.log(`final test accuracy ${(100 * summary.finalTestAccuracy).toFixed(2)}% after ${summary.iterations} iterations (${curve.length} evaluations) in ${summary.seconds.toFixed(1)} s (${summary.backend} backend, ${summary.program} program)`);
  console.log(`training FLOPs ${formatFlops(summary.flops.actual)} (dense network: ${formatFlops(summary.flops.dense)})`);
  if (summary.sparseTraining) console.log(`${sparse!.method}: ${String(summary.sparseTraining.updates)} mask updates, ${String(summary.sparseTraining.regrown)} connections regrown, ${Number(summary.sparseTraining.updateSeconds).toFixed(2)} s in updates`);
  if (out) console.log(`wrote ${out}/summary.json, hparams.json, metrics.csv, model_final.safetensors${sparse ? ', mask_final.safetensors' : ''}`);
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

const LOTTERY_EXTRA = {
  report: { type: 'boolean', help: 'write the HTML report into the run directory at the end', default: false },
  dryRun: { type: 'boolean', help: 'print the plan (every stage, its inputs and dependencies, whether it is done) and train nothing', default: false },
  queue: { type: 'string', help: 'submit the stages to the workers of this queue (redis://[:password@]host:port, rediss:// for TLS) instead of training here' },
  wait: { type: 'boolean', help: 'with --queue: follow the run until it finishes and print its summary', default: false },
  ...SETTINGS_SCHEMA,
} as const satisfies Schema;

async function cmdLottery(argv: string[]): Promise<void> {
  const { values, common } = parseArgs(argv, LOTTERY_SCHEMA, LOTTERY_EXTRA);
  if (common.help) {
    console.log(helpText('Usage: lth lottery [options]', { ...LOTTERY_SCHEMA, ...LOTTERY_EXTRA }));
    return;
  }
  const report = values.report === true, dryRun = values.dryRun === true, wait = values.wait === true;
  const queue = values.queue as string | undefined;
  delete values.report;
  delete values.dryRun;
  delete values.queue;
  delete values.wait;
  const context = contextFrom(values);
  const h = resolveLottery(values);
  if (wait && !queue) throw new LthError('--wait follows a run submitted with --queue; without --queue the run trains here and the command waits anyway');
  if (report && queue && !wait) throw new LthError('--report with --queue writes the report once the run is finished: add --wait, or run lth report on the run directory later');
  if (dryRun) {
    checkRunData(experimentOf(h).runDir, checkRun(h));
    const plan = describePlan(h);
    if (common.json) {
      printJson({ runDir: `${shownRunDir(h)}`, stages: plan });
      return;
    }
    console.log(`run directory: ${shownRunDir(h)}  (${plan.length} stages, ${plan.filter((s) => s.done).length} done)`);
    for (const s of plan) {
      console.log(`${s.done ? 'done   ' : 'to run '} ${s.id.padEnd(30)} after [${s.deps.join(', ')}]`);
      console.log(`        ${s.inputs}`);
    }
    return;
  }
  if (queue) {
    // The queue's client (BullMQ, ioredis) is loaded only for a run submitted to one.
    const done = await (await import('./queue-commands.js')).submitLottery(h, queue, wait, common.json);
    if (done) printSummary(h, done.runDir, done.summary, common.json, report ? (await (await import('../report/index.js')).writeReport(done.runDir)).html : undefined);
    return;
  }
  const progress = new Progress(common.json);
  const stagesTotal = h.replicates * (1 + h.levels * (1 + h.branches.length));
  progress.log(`lth lottery: ${h.training.model} on ${h.training.dataset}, ${h.levels} levels, ${h.replicates} replicate(s), branches [${h.branches.join(', ') || 'none'}], ${h.training.steps} per level, ${describeContext(context)}`);
  progress.log(`run directory: ${shownRunDir(h)}`);
  const started = Date.now();
  let stagesDone = 0, itersDone = 0, itersInStage = 0;
  const { runDir, summary } = runLottery(h, {
    context, stopRequested: watchStop(),
    onStage: (s, skipped) => {
      stagesDone++;
      if (!skipped) { itersDone += s.iterations; itersInStage = 0; }
      progress.log(`${skipped ? 'done already' : 'finished'}: replicate ${s.replicate} level ${s.level}/${h.levels} ${s.stage.padEnd(12)} density ${pct(s.density).padStart(7)}  early stop it ${String(s.earlyStopIteration).padStart(6)}  test acc ${pct(s.earlyStopTestAccuracy)}${skipped ? '' : `  (${s.seconds.toFixed(1)} s)`}`);
    },
    onProgress: (p) => {
      itersInStage = p.point.iteration;
      const elapsed = (Date.now() - started) / 1000;
      const doneIts = itersDone + itersInStage;
      const remainingIts = (stagesTotal - stagesDone) * p.iterations - itersInStage;
      const eta = doneIts > 0 ? (elapsed / doneIts) * remainingIts : NaN;
      progress.update(`${bar(stagesDone / stagesTotal)} rep ${p.replicate + 1}/${h.replicates} level ${p.level}/${h.levels} ${p.stage} density ${pct(p.density)}  it ${p.point.iteration}/${p.iterations}  val acc ${pct(p.point.valAccuracy)}  ETA ${formatEta(eta)}`);
    },
  });
  // The report's modules (Vega, the PNG renderer) take a good part of a second to load: only when asked for.
  const reportFile = report ? (await (await import('../report/index.js')).writeReport(runDir)).html : undefined;
  printSummary(h, runDir, summary, common.json, reportFile);
}

function printSummary(h: LotteryHparams, runDir: string, summary: LotterySummary, json: boolean, reportFile: string | undefined): void {
  if (json) {
    printJson({ runDir, ...summary, ...(reportFile ? { report: reportFile } : {}) });
    return;
  }
  console.log(`\nlevel  weights left  early-stop it (mean)  test acc at early stop (mean [min, max])${h.branches.map((b) => `  ${b}: it / acc`).join('')}`);
  for (const a of summary.aggregate) {
    const m = a.main;
    let line = `${String(a.level).padStart(5)}  ${pct(a.density.mean).padStart(12)}  ${m.earlyStopIteration.mean.toFixed(0).padStart(20)}  ${pct(m.earlyStopTestAccuracy.mean)} [${pct(m.earlyStopTestAccuracy.min)}, ${pct(m.earlyStopTestAccuracy.max)}]`;
    for (const b of h.branches) {
      const s = a.branches[b];
      line += s ? `  ${s.earlyStopIteration.mean.toFixed(0).padStart(6)} / ${pct(s.earlyStopTestAccuracy.mean)}` : '  -';
    }
    console.log(line);
  }
  console.log(`\nresults: ${runDir}/summary.json${summary.complete ? '' : ' (incomplete)'}`);
  if (reportFile) console.log(`report:  ${reportFile}`);
}

function cmdLs(argv: string[]): void {
  const schema = { root: LOTTERY_SCHEMA.root };
  const { values, common } = parseArgs(argv, schema);
  if (common.help) {
    console.log(helpText('Usage: lth ls [--root DIR]', schema));
    return;
  }
  const runs = listRuns(String(values.root ?? LOTTERY_SCHEMA.root.default));
  if (common.json) {
    printJson(runs.map(({ summary, differs: _shownOnly, ...r }) => ({ ...r, complete: runComplete(r.stagesDone, r.stages, summary) })));
    return;
  }
  if (runs.length === 0) console.log('no runs');
  for (const r of runs) {
    if (r.damaged) {
      console.log(`${r.run}  damaged: ${r.damaged}`);
      continue;
    }
    const hp = Object.entries(r.differs).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`).join(' ') || '(the model\'s defaults)';
    console.log(`${r.run}  ${r.stagesDone}${r.stages === null ? '' : ` of ${r.stages}`} stages done${runComplete(r.stagesDone, r.stages, r.summary) ? ', complete' : ''}  ${hp}`);
  }
}

/** Whether every stage of the run's plan is finished now (its summary may be older: a stage removed since). */
function runComplete(done: number, stages: number | null, summary: LotterySummary | null): boolean {
  return stages === null ? summary?.complete === true : done >= stages;
}

const STABILITY_EXTRA = {
  rewindStep: { type: 'string', help: "where both copies start: '0it' (θ0) or a step of one training run", default: '0it' },
  points: { type: 'integer', help: 'points on the straight line between the two trained copies, ends included (3 to 1001)', default: 11 },
  ...SETTINGS_SCHEMA,
} as const satisfies Schema;

function cmdStability(argv: string[]): void {
  const { values, common } = parseArgs(argv, TRAINING_SCHEMA, STABILITY_EXTRA);
  if (common.help) {
    // --eval-every is parsed only to say why it does not apply.
    const { evalEvery: _evaluatedAtTheEnd, ...training } = TRAINING_SCHEMA;
    console.log(helpText('Usage: lth stability [options]\n\nTrains two copies of a network from the same start with different data orders and\nreports the test error along the straight line between them and its error barrier.', { ...training, ...STABILITY_EXTRA }));
    return;
  }
  const rewindStep = String(values.rewindStep ?? STABILITY_EXTRA.rewindStep.default);
  const points = Number(values.points ?? STABILITY_EXTRA.points.default);
  delete values.rewindStep;
  delete values.points;
  if (values.evalEvery !== undefined) throw new LthError('--eval-every: lth stability evaluates the two trained copies and the path between them only (--points sets how many)');
  const context = contextFrom(values);
  const h = resolveTraining(values);
  const progress = new Progress(common.json);
  progress.log(`lth stability: ${h.model} on ${h.dataset}, ${h.steps}, two copies from ${stepToIterations(parseStep(rewindStep, '--rewind-step'), 1) === 0 ? 'θ0' : `step ${rewindStep}`}, ${describeContext(context)}`);
  const r = runStability({ training: h, rewindStep, points, context, onProgress: (what) => progress.log(what) });
  if (common.json) {
    printJson(r);
    return;
  }
  console.log('\n alpha  test error %  test loss');
  for (const p of r.path) console.log(`${p.alpha.toFixed(2).padStart(6)}  ${(100 * p.testError).toFixed(2).padStart(12)}  ${p.testLoss.toFixed(4).padStart(9)}`);
  console.log(`\nerror barrier: ${(100 * r.errorBarrier).toFixed(2)} points (max error on the path - mean of its ends)`);
}

const VERIFY_SCHEMA = {
  repair: { type: 'boolean', help: 'redo the damaged stages and every stage that depends on them, then finish the run', default: false },
  ...SETTINGS_SCHEMA,
} as const satisfies Schema;

function cmdVerify(argv: string[]): void {
  const { values, positional, common } = parseArgs(argv, VERIFY_SCHEMA, {}, true);
  if (common.help) {
    console.log(helpText('Usage: lth verify <run-dir> [--repair]', VERIFY_SCHEMA));
    return;
  }
  if (positional.length !== 1) throw new LthError(`verify: expected one run directory, got ${positional.length ? positional.join(' ') : 'none'}`);
  const runDir = positional[0];
  const repair = values.repair === true;
  delete values.repair;
  const context = contextFrom(values);
  const checks = verifyRun(runDir);
  const damaged = checks.filter((c) => c.state === 'damaged');
  if (!repair) {
    if (common.json) printJson({ runDir, stages: checks });
    else {
      console.log(`${runDir}: ${checks.filter((c) => c.state === 'whole').length} stages whole, ${damaged.length} damaged, ${checks.filter((c) => c.state === 'unfinished').length} unfinished`);
      for (const c of damaged) console.log(`damaged ${c.id}: ${c.problems.join('; ')}`);
      if (damaged.length) console.log(`lth verify ${runDir} --repair redoes them and the stages after them`);
    }
    if (damaged.length) process.exitCode = 1;
    return;
  }
  const progress = new Progress(common.json);
  for (const c of damaged) progress.log(`damaged ${c.id}: ${c.problems.join('; ')}`);
  // The repair redoes the damaged stages and those after them, and trains any stage left unfinished.
  let trained = 0;
  const { redone, summary } = repairRun(runDir, {
    context, stopRequested: watchStop(), onStage: (s, skipped) => {
      if (skipped) return;
      trained++;
      progress.log(`trained: replicate ${s.replicate} level ${s.level} ${s.stage}`);
    },
  });
  if (common.json) printJson({ runDir, redone, trained, complete: summary.complete });
  else console.log(`${trained} stage(s) trained, ${redone.length} of them redone (damaged, or after a damaged one); results: ${runDir}/summary.json${summary.complete ? '' : ' (incomplete)'}`);
}

const EXPORT_SCHEMA = {
  level: { type: 'integer', help: 'the level whose stage to export (0: the dense network)' },
  replicate: { type: 'integer', help: 'the replicate', default: 0 },
  branch: { type: 'string', help: 'the stage\'s branch (main: the winning ticket)', default: 'main' },
  weights: { type: 'string', help: 'final: the trained weights; init: the weights the stage started from (θ0 ⊙ mask for a ticket)', choices: ['final', 'init'], default: 'final' },
  format: { type: 'string', help: 'onnx (runs in onnxruntime), safetensors, or pt (a PyTorch state dict for torch.load) (default: the one --out ends in: .onnx, .safetensors, .pt or .pth)', choices: ['onnx', 'safetensors', 'pt'] },
  out: { type: 'string', help: 'the file to write (must not exist)' },
  compact: { type: 'boolean', help: 'a structurally pruned stage as the smaller dense network it leaves (loads into a model of the smaller widths)', default: false },
} as const satisfies Schema;

function cmdExport(argv: string[]): void {
  const usage = 'Usage: lth export <run-dir> --level K --out FILE [--format onnx|safetensors|pt] [--replicate R] [--branch B] [--weights final|init] [--compact]';
  const { values, positional, common } = parseArgs(argv, EXPORT_SCHEMA, {}, true);
  if (common.help) {
    console.log(helpText(usage, EXPORT_SCHEMA));
    return;
  }
  if (positional.length !== 1) throw new LthError(`export: expected one run directory, got ${positional.length ? positional.join(' ') : 'none'}`);
  for (const k of ['level', 'out'] as const) if (values[k] === undefined) throw new LthError(`export: --${k} is required. ${usage}`);
  const r = exportStage(positional[0], {
    level: values.level as number, replicate: values.replicate as number, branch: values.branch as string,
    weights: values.weights as 'final' | 'init', format: values.format as ExportFormat | undefined, out: values.out as string, compact: values.compact as boolean,
  });
  if (common.json) printJson(r);
  else console.log(`${r.out}: ${r.model}${r.widths ? ` compacted to widths ${r.widths.join(', ')}` : ''}, ${r.stage}, ${(100 * r.density).toFixed(2)}% of the weights, ${r.bytes} bytes`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'train': return cmdTrain(rest);
    case 'lottery': return cmdLottery(rest);
    case 'ls': return cmdLs(rest);
    case 'verify': return cmdVerify(rest);
    case 'stability': return cmdStability(rest);
    case 'export': return cmdExport(rest);
    case 'worker': return (await import('./queue-commands.js')).cmdWorker(rest);
    case 'status': return (await import('./queue-commands.js')).cmdStatus(rest);
    case 'report': return (await import('./report-command.js')).cmdReport(rest);
    case 'sweep': return (await import('./sweep-command.js')).cmdSweep(rest);
    case undefined: case '--help': case '-h': case 'help': console.log(USAGE); return;
    case '--version': case 'version': console.log(LTH_VERSION); return;
    default: throw new LthError(`unknown command '${command}'. Known: train, lottery, stability, ls, report, verify, export, worker, status, sweep`);
  }
}

/** What to do about a failure of the machine rather than of lth or its user, by error code. */
const ENVIRONMENT_HINTS: Readonly<Record<string, string>> = {
  ENOSPC: 'the disk is full: free some space and run the same command again (finished stages are kept)',
  EDQUOT: 'the disk quota is used up: free some space and run the same command again (finished stages are kept)',
  EROFS: 'the file system is read-only: choose a writable place (--root, --out)',
  EACCES: 'permission denied: choose a place you may write to (--root, --out), or change its permissions',
  EPERM: 'operation not permitted: choose a place you may write to (--root, --out)',
  ENOTDIR: 'a file stands where a directory is needed: choose another path (--root, --out) or move the file',
  EISDIR: 'a directory stands where a file is needed: choose another path',
  EEXIST: 'a file or directory is in the way: choose another path or remove it',
  ENOENT: 'a file or directory is missing',
  EMFILE: 'too many open files: raise the limit (ulimit -n) and run the same command again',
  EIO: 'an input/output error from the disk: check the device, then run the same command again',
};

/**
 * Why a recursive mkdir of `dir` failed with ENOENT, which Node reports where a parent could
 * not be made: the nearest existing ancestor is read-only, not writable or not a directory.
 */
function mkdirCause(dir: string): string | null {
  let at = path.resolve(dir);
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  if (!fs.statSync(at).isDirectory()) return 'ENOTDIR';
  try {
    fs.accessSync(at, fs.constants.W_OK);
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? null;
  }
}

/** `lth: error:` text for a file-system failure (a Node.js error with a known code), or null for anything else. */
function environmentError(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== 'string' || !(err.code in ENVIRONMENT_HINTS)) return null;
  const cause = err.syscall === 'mkdir' && err.code === 'ENOENT' && err.path ? mkdirCause(err.path) : null;
  const code = cause !== null && cause in ENVIRONMENT_HINTS ? cause : err.code;
  const dest = (err as { dest?: string }).dest;
  const where = err.path ? ` ${err.path}${dest ? ` -> ${dest}` : ''}` : '';
  return `cannot ${err.syscall ?? 'access'}${where} (${code}): ${ENVIRONMENT_HINTS[code]}`;
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const environment = environmentError(e);
  if (environment) {
    process.stderr.write(`lth: error: ${environment}\n`);
    process.exitCode = 3;
    return;
  }
  if (e instanceof Stopped) {
    process.stderr.write(`\nlth: ${e.message}\n`);
    process.exitCode = 130;
    return;
  }
  if (e instanceof LthError) {
    process.stderr.write(`lth: error: ${e.message}\n`);
    process.exitCode = 2;
    return;
  }
  throw e;
});

/** FLOPs in the SI unit that keeps 3 significant digits readable (1.23e15 → '1.23 PFLOP'). */
function formatFlops(x: number): string {
  const units = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  let u = 0;
  while (x >= 1000 && u < units.length - 1) {
    x /= 1000;
    u++;
  }
  return `${x.toPrecision(3)} ${units[u]}FLOP`;
}

/** The run directory h trains in, as the user named its root. */
function shownRunDir(h: LotteryHparams): string {
  return `${h.root}/${path.basename(experimentOf(h).runDir)}`;
}
