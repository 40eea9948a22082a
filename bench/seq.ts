/**
 * Sequence-model training-step benchmark: the median time of one char_lstm or
 * text_transformer training step — the model's batch (32) of token ids, forward, mean
 * softmax cross-entropy (over positions for char_lstm), backward, Adam — through the graph
 * program the trainer uses, on the current backend (native unless LTH_BACKEND says
 * otherwise).
 *
 *   node dist/bench/seq.js [--model char_lstm] [--steps 10] [--warmup 3] [--threads N]
 *                          [--vs-torch] [--json]
 *
 * The batch is fixed random token ids and labels (no data files read); weights are the
 * model's θ0 (seed 0). --vs-torch then runs bench/torch_seq.py (not concurrently) with the
 * same model, batch and lr, at 1 thread and at all cores (bench/torch.ts), and prints the
 * ratio lth/torch of the median step times against the faster.
 *
 * Prints a table; with --json, one JSON object as the last stdout line (and no progress).
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveContext } from '../src/backend/index.js';
import { parseArgs, helpText } from '../src/cli/args.js';
import type { Schema } from '../src/core/hparams.js';
import { LthError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { Dataset } from '../src/data/dataset.js';
import { getDataset } from '../src/data/registry.js';
import { getModel } from '../src/models/registry.js';
import { compileProgram } from '../src/program/compile.js';
import { TorchSteps, findTorchPython, inTurn } from './torch.js';
import { cpuModel, machineLine, runBench } from './run.js';
import { median } from './stats.js';

const SCHEMA = {
  model: { type: 'string', help: 'char_lstm or text_transformer', default: 'char_lstm', choices: ['char_lstm', 'text_transformer'] },
  steps: { type: 'integer', help: 'timed steps; the median is reported', default: 10 },
  warmup: { type: 'integer', help: 'untimed steps first', default: 3 },
  threads: { type: 'integer', help: "native backend threads (default: the addon's own)" },
  vsTorch: { type: 'boolean', help: 'also time the same step in PyTorch (bench/torch_seq.py)', default: false },
  rounds: { type: 'integer', help: "with --vs-torch: lth's --steps steps and PyTorch's in turn this many times (as conv.js --rounds); the median of the rounds' ratios is reported", default: 1 },
} as const satisfies Schema;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function main(): Promise<void> {
  const { values, common } = parseArgs(process.argv.slice(2), SCHEMA);
  if (common.help) {
    process.stdout.write(`${helpText('usage: node dist/bench/seq.js [options]', SCHEMA)}\n`);
    return;
  }
  const name = (values.model as string | undefined) ?? SCHEMA.model.default;
  const steps = (values.steps as number | undefined) ?? SCHEMA.steps.default;
  const warmup = (values.warmup as number | undefined) ?? SCHEMA.warmup.default;
  const rounds = (values.rounds as number | undefined) ?? SCHEMA.rounds.default;
  if (!(steps >= 1)) throw new LthError(`--steps must be at least 1, got ${steps}`);
  if (!(rounds >= 1)) throw new LthError(`--rounds must be at least 1, got ${rounds}`);
  if (rounds > 1 && values.vsTorch !== true) throw new LthError('--rounds goes with --vs-torch (without it, raise --steps)');
  const progress = (line: string) => { if (!common.json) process.stderr.write(`${line}\n`); };
  const spec = getModel(name), ds = getDataset(spec.training.dataset);
  const batch = spec.training.batchSize, [length] = ds.sampleShape;
  const lm = spec.training.dataset === 'moby_dick';
  const context = resolveContext({ threads: values.threads as number | undefined });
  const model = spec.build();
  model.initialize(new Rng(0, 'init'));
  const program = compileProgram(model, { optimizer: { name: 'adam', lr: spec.training.lr, momentum: 0, weightDecay: 0 }, context });
  const rng = new Rng(1, 'bench_data');
  const vocab = lm ? ds.numClasses : 10000;
  const x = new Float32Array(batch * length).map(() => rng.int(vocab));
  const labels = Int32Array.from({ length: lm ? batch * length : batch }, () => rng.int(ds.numClasses));
  const data = new Dataset(x, labels, [length], ds.numClasses, lm ? [length] : []);
  const order = Int32Array.from({ length: batch }, (_, i) => i);
  const loss = new Float64Array(1);
  const times: number[] = [];
  const step = () => {
    program.step({ data, order, from: 0, batchSize: batch }, loss);
    if (!Number.isFinite(loss[0])) throw new LthError(`bench: loss is ${loss[0]}`);
  };
  /** One round of lth's timed steps: their median, in seconds. */
  const timeLth = (): number => {
    const first = times.length;
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      step();
      times.push((performance.now() - t0) / 1000);
      progress(`  step ${i + 1}/${steps}: ${(times[times.length - 1] * 1000).toFixed(1)} ms`);
    }
    return median(times.slice(first));
  };
  progress(`${context.backend.name}, ${context.settings.threads} thread(s): ${name}, batch ${batch} x ${length} tokens, ${warmup} warm-up + ${steps} timed steps${rounds > 1 ? ` a round, ${rounds} rounds` : ''}...`);
  const out: Record<string, unknown> = {
    model: name, backend: context.backend.name, simd: context.settings.simd, threads: context.settings.threads, batch, length, cpu: cpuModel(), cores: os.cpus().length,
    node: process.version, loadavg1m: Number(os.loadavg()[0].toFixed(2)), stepsTimed: steps,
  };
  const found = values.vsTorch === true ? findTorchPython() : null;
  if (found) progress(`torch: ${steps} steps a round, at 1 thread and at all cores, in turn with lth's...`);
  const started = found === null ? null : 'note' in found ? new Error(found.note) : await TorchSteps.start(found.python, path.join(ROOT, 'bench', 'torch_seq.py'),
    ['--model', name, '--warmup', String(Math.max(1, Math.min(warmup, 3))), '--batch', String(batch), '--lr', String(spec.training.lr)]);
  // After PyTorch has started, so that lth's warm-up steps come right before its timed ones.
  for (let i = 0; i < warmup; i++) step();
  const { lthRounds, torch, note } = await inTurn(started, rounds, steps, () => timeLth());
  const stepSeconds = median(lthRounds);
  if (note) {
    progress(note);
    out.torchNote = note;
  }
  if (torch) {
    out.torch = { version: torch.info.torch, threads: torch.threads, blas: torch.info.blas };
    out.torchStepSecondsByThreads = torch.byThreads;
    out.torchStepSeconds = median(torch.rounds);
    out.lthOverTorch = median(torch.ratios);
    if (rounds > 1) out.rounds = torch.ratios;
  }
  out.stepSeconds = stepSeconds;
  out.stepRunSeconds = times;
  if (common.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  const lines = [`lth ${name} training step: batch ${batch} x ${length} tokens, Adam; median of ${steps} steps`,
    `${machineLine(context)}; load ${out.loadavg1m}`, '', `  step       ${ms(stepSeconds)}`];
  if (out.torchStepSeconds !== undefined) {
    lines.push(`  torch      ${ms(out.torchStepSeconds as number)} (${(out.torch as { threads: number }).threads} threads)`,
      `  lth/torch  ${(out.lthOverTorch as number).toFixed(3)}x${rounds > 1 ? ` (rounds: ${(out.rounds as number[]).map((r) => r.toFixed(3)).join(', ')})` : ''}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench('bench', main);
