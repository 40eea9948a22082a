/**
 * Structured pruning benchmark: LeNet-300-100 trained the same number of iterations dense
 * and with whole hidden neurons removed (the share of each hidden layer's neurons kept, the
 * removed ones drawn at random), through train() itself: a structurally pruned network
 * compiles to the `compact` program, the smaller dense network its masks leave, so it needs
 * no sparse kernels. Evaluation only at the start and the end. Runs are interleaved (run r
 * of every configuration, then run r + 1) and the median is reported with the ratio to dense,
 * beside the median CPU time of the process (all its threads, a pool's waiting included):
 * on one thread, a measure of the work that other jobs on the machine disturb less than
 * the wall clock.
 *
 *   node dist/bench/structured.js [--kept 0.5,0.25] [--iterations 3000] [--runs 5] [--threads N] [--json]
 *
 * Prints a table; with --json, one JSON object as the last stdout line (and no progress).
 */
import os from 'node:os';
import { resolveContext } from '../src/backend/index.js';
import { parseArgs, helpText } from '../src/cli/args.js';
import type { Schema } from '../src/core/hparams.js';
import { LthError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { getDataset } from '../src/data/registry.js';
import { getModel } from '../src/models/registry.js';
import { unitChain, zeroInputsFrom, zeroUnit } from '../src/nn/compact.js';
import type { Model } from '../src/nn/model.js';
import { train } from '../src/training/train.js';
import { cpuModel, machineLine, runBench } from './run.js';
import { median } from './stats.js';

const SCHEMA = {
  kept: { type: 'list', help: 'shares of each hidden layer\'s neurons kept', default: ['0.5', '0.25'] },
  iterations: { type: 'integer', help: 'iterations per training run', default: 3000 },
  runs: { type: 'integer', help: 'interleaved runs of each configuration; the median is reported', default: 5 },
  threads: { type: 'integer', help: "native backend threads (default: the machine's cores)" },
} as const satisfies Schema;

const BATCH = 60, SEED = 0;

/** Masks that remove all but ⌊kept·units⌋ of each hidden layer's neurons (drawn at random), with their outgoing connections. */
function neuronMasks(model: Model, kept: number, rng: Rng): Map<string, Float32Array> {
  const chain = unitChain(model);
  const masks = new Map(chain.map((l) => [l.weight, new Float32Array(model.parameter(l.weight).size).fill(1)]));
  chain.forEach((l, i) => {
    if (l.output) return;
    const order = rng.permutation(l.units);
    for (const j of order.subarray(Math.floor(kept * l.units))) {
      zeroUnit(masks.get(l.weight)!, l, j);
      zeroInputsFrom(masks.get(chain[i + 1].weight)!, chain[i + 1], j);
    }
  });
  return masks;
}

function main(): void {
  const { values, common } = parseArgs(process.argv.slice(2), SCHEMA, {});
  if (common.help) {
    console.log(helpText('usage: node dist/bench/structured.js [options]', SCHEMA));
    return;
  }
  const kept = ((values.kept as string[] | undefined) ?? [...SCHEMA.kept.default]).map(Number);
  const iterations = Number(values.iterations ?? SCHEMA.iterations.default), runs = Number(values.runs ?? SCHEMA.runs.default);
  for (const k of kept) if (!(k > 0 && k < 1)) throw new LthError(`--kept: each share must be in (0, 1), got ${k}`);
  if (!(iterations >= 100 && runs >= 1)) throw new LthError('--iterations must be at least 100 and --runs at least 1');
  const context = resolveContext({ threads: values.threads === undefined ? undefined : Number(values.threads) });
  const progress = (line: string) => { if (!common.json) console.log(line); };
  const data = getDataset('mnist').load(undefined, SEED);
  const configs = [1, ...kept].map((k) => ({ kept: k, seconds: [] as number[], cpu: [] as number[], program: '', weights: 0, accuracy: NaN }));
  progress(`LeNet-300-100 on MNIST, ${iterations} iterations a run, ${runs} interleaved runs, fused ${context.settings.fused}; ${machineLine(context)}; load ${os.loadavg()[0].toFixed(2)}`);
  for (let r = 0; r < runs; r++) {
    for (const c of configs) {
      const model = getModel('lenet_300_100').build();
      model.initialize(new Rng(SEED, 'init'));
      const masks = c.kept < 1 ? neuronMasks(model, c.kept, new Rng(SEED, 'bench_neurons')) : undefined;
      const t0 = performance.now(), cpu0 = process.cpuUsage();
      const result = train({
        model, data, iterations, batchSize: BATCH, seed: SEED, evalEvery: iterations, backgroundEval: false, context,
        optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 }, masks,
      });
      c.seconds.push((performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(cpu0);
      c.cpu.push((cpu.user + cpu.system) / 1e6);
      c.program = result.program;
      c.weights = masks ? [...masks.values()].reduce((a, m) => a + m.reduce((s, v) => s + v, 0), 0) : model.prunableNames().reduce((a, n) => a + model.parameter(n).size, 0);
      c.accuracy = result.final.testAccuracy;
    }
    progress(`  run ${r + 1}/${runs}: ${configs.map((c) => `${c.kept * 100}% ${c.seconds[r].toFixed(3)} s`).join(', ')}`);
  }
  const dense = median(configs[0].seconds);
  const rows = configs.map((c) => ({
    neuronsKept: c.kept, program: c.program, weights: c.weights, seconds: median(c.seconds), speedup: dense / median(c.seconds), cpuSeconds: median(c.cpu), testAccuracy: c.accuracy,
  }));
  if (common.json) {
    console.log(JSON.stringify({ bench: 'structured', iterations, runs, threads: context.settings.threads, simd: context.settings.simd, cpu: cpuModel(), configs: rows }));
    return;
  }
  console.log('');
  console.log(`load ${os.loadavg()[0].toFixed(2)}`);
  console.log('neurons kept  program    weights   seconds  speedup    cpu s  test acc');
  for (const r of rows) {
    console.log(`${`${r.neuronsKept * 100}%`.padStart(12)} ${r.program.padEnd(9)} ${String(r.weights).padStart(8)} ${r.seconds.toFixed(3).padStart(9)} ${r.speedup.toFixed(2).padStart(7)}x ${r.cpuSeconds.toFixed(3).padStart(8)} ${(100 * r.testAccuracy).toFixed(2).padStart(8)}%`);
  }
}

runBench('structured bench', main);
