#!/usr/bin/env node
import { LthError } from '../core/errors.js';
import { getBackend } from '../backend/index.js';
import { TRAINING_SCHEMA, resolveTraining } from '../training/hparams.js';
import { runTraining } from '../training/run.js';
import { helpText, parseArgs } from './args.js';
import { Progress, bar, formatEta } from './progress.js';

const USAGE = `lth — the Lottery Ticket Hypothesis toolkit

Usage:
  lth train   [options]   train one dense network (lth train --help)

Environment: LTH_BACKEND=native|reference, LTH_THREADS=N`;

function printJson(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function cmdTrain(argv: string[]): void {
  const { values, common } = parseArgs(argv, TRAINING_SCHEMA, { out: { type: 'string', help: 'write hparams, metrics, weights and summary here' } });
  if (common.help) {
    console.log(helpText('Usage: lth train [options]', { ...TRAINING_SCHEMA, out: { type: 'string', help: 'write hparams, metrics, weights and summary here' } }));
    return;
  }
  const out = values.out as string | undefined;
  delete values.out;
  const h = resolveTraining(values);
  const progress = new Progress(common.json);
  progress.log(`lth train: ${h.model} on ${h.dataset}, ${h.steps}, batch ${h.batchSize}, ${h.optimizer} lr ${h.lr}, seed ${h.seed}, backend ${getBackend().name}`);
  const started = Date.now();
  const result = runTraining(h, {
    out,
    onEval: (p, total) => {
      const elapsed = (Date.now() - started) / 1000;
      const eta = p.iteration > 0 ? (elapsed / p.iteration) * (total - p.iteration) : NaN;
      progress.update(`${bar(p.iteration / total)} it ${p.iteration}/${total}  val loss ${p.valLoss.toFixed(4)}  val acc ${(100 * p.valAccuracy).toFixed(2)}%  test acc ${(100 * p.testAccuracy).toFixed(2)}%  ETA ${formatEta(eta)}`, p.iteration === total);
    },
  });
  const { curve, ...summary } = result;
  if (common.json) {
    printJson(summary);
    return;
  }
  progress.log('');
  console.log(`early stop (min validation loss) at iteration ${summary.earlyStopIteration}: val loss ${summary.earlyStopValLoss.toFixed(4)}, test accuracy ${(100 * summary.earlyStopTestAccuracy).toFixed(2)}%`);
  console.log(`final test accuracy ${(100 * summary.finalTestAccuracy).toFixed(2)}% after ${summary.iterations} iterations (${curve.length} evaluations) in ${summary.seconds.toFixed(1)} s on the ${summary.backend} backend`);
  if (out) console.log(`wrote ${out}/summary.json, metrics.csv, model_final.safetensors`);
}

function main(argv: string[]): void {
  const [command, ...rest] = argv;
  switch (command) {
    case 'train': return cmdTrain(rest);
    case undefined: case '--help': case 'help': console.log(USAGE); return;
    default: throw new LthError(`unknown command '${command}'. Known: train`);
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  if (e instanceof LthError) {
    process.stderr.write(`lth: error: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
