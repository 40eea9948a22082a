/**
 * Dynamic sparse training benchmark: the wall-clock of LeNet-300-100 trained the same
 * number of iterations dense, and sparse from scratch with RigL and SET at each density
 * (ERK per-layer densities, drop/regrow every 100 iterations to 75% of the budget, as
 * `lth train --sparse-train`), through train() itself — the mask updates, RigL's dense
 * gradients and the program's pattern changes included; evaluation only at the start and
 * the end. Runs are interleaved (run r of every configuration, then run r + 1) and the
 * median is reported, with the ratio to dense and the mean cost of one mask update.
 *
 *   node dist/bench/dst.js [--densities 0.1,0.036] [--iterations 3000] [--runs 3] [--density-rule erk|uniform] [--threads N] [--json]
 *
 * Prints a table; with --json, one JSON object as the last stdout line (and no progress).
 */
import { resolveContext } from '../src/backend/index.js';
import { parseArgs, helpText } from '../src/cli/args.js';
import type { Schema } from '../src/core/hparams.js';
import { LthError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { getDataset } from '../src/data/registry.js';
import { sparseTrainingSetup } from '../src/dynamic/setup.js';
import { SPARSE_TRAIN_METHODS, type SparseTrainMethod } from '../src/dynamic/sparse-training.js';
import { getModel } from '../src/models/registry.js';
import { train } from '../src/training/train.js';
import { cpuModel, machineLine, runBench } from './run.js';
import { median } from './stats.js';

const SCHEMA = {
  densities: { type: 'list', help: 'overall weight densities of the sparse runs', default: ['0.1', '0.036'] },
  iterations: { type: 'integer', help: 'iterations per training run', default: 3000 },
  runs: { type: 'integer', help: 'interleaved runs of each configuration; the median is reported', default: 3 },
  densityRule: { type: 'string', help: 'how the density is spread over the layers: erk or uniform', choices: ['erk', 'uniform'], default: 'erk' },
  threads: { type: 'integer', help: "native backend threads (default: the machine's cores)" },
} as const satisfies Schema;

const BATCH = 60, SEED = 0;
const UPDATE = { updateEvery: 100, dropFraction: 0.3, updateEnd: 0.75 };

interface Config {
  readonly name: string;
  readonly method: SparseTrainMethod | null;
  readonly density: number;
  readonly seconds: number[];
  readonly updateSeconds: number[];
  updates: number;
  accuracy: number;
}

function main(): void {
  const { values, common } = parseArgs(process.argv.slice(2), SCHEMA, {});
  if (common.help) {
    console.log(helpText('usage: node dist/bench/dst.js [options]', SCHEMA));
    return;
  }
  const densities = ((values.densities as string[] | undefined) ?? [...SCHEMA.densities.default]).map(Number);
  const iterations = Number(values.iterations ?? SCHEMA.iterations.default), runs = Number(values.runs ?? SCHEMA.runs.default);
  for (const d of densities) if (!(d > 0 && d < 1)) throw new LthError(`--densities: each must be in (0, 1), got ${d}`);
  if (!(iterations >= 100 && runs >= 1)) throw new LthError('--iterations must be at least 100 and --runs at least 1');
  const rule = (values.densityRule ?? SCHEMA.densityRule.default) as 'erk' | 'uniform';
  const context = resolveContext({ threads: values.threads === undefined ? undefined : Number(values.threads) });
  const progress = (line: string) => { if (!common.json) console.log(line); };
  const data = getDataset('mnist').load(undefined, SEED);
  const configs: Config[] = [{ name: 'dense', method: null, density: 1, seconds: [], updateSeconds: [], updates: 0, accuracy: NaN }];
  for (const d of densities) {
    for (const m of SPARSE_TRAIN_METHODS) configs.push({ name: `${m} ${d}`, method: m, density: d, seconds: [], updateSeconds: [], updates: 0, accuracy: NaN });
  }
  progress(`LeNet-300-100 on MNIST, ${iterations} iterations a run, ${rule} layer densities, ${runs} interleaved runs; ${machineLine(context)}`);
  for (let r = 0; r < runs; r++) {
    for (const c of configs) {
      const model = getModel('lenet_300_100').build();
      model.initialize(new Rng(SEED, 'init'));
      const sparse = c.method ? sparseTrainingSetup({ method: c.method, density: c.density, densityRule: rule, ...UPDATE }, SEED, context)(model, iterations) : null;
      const t0 = performance.now();
      const result = train({
        model, data, iterations, batchSize: BATCH, seed: SEED, evalEvery: iterations, backgroundEval: false, context,
        optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 }, masks: sparse?.masks, maskSchedule: sparse?.schedule,
      });
      c.seconds.push((performance.now() - t0) / 1000);
      c.updateSeconds.push(result.maskUpdates?.seconds ?? 0);
      c.updates = result.maskUpdates?.count ?? 0;
      c.accuracy = result.final.testAccuracy;
    }
    progress(`  run ${r + 1}/${runs}: ${configs.map((c) => `${c.name} ${c.seconds[r].toFixed(3)} s`).join(', ')}`);
  }
  const dense = median(configs[0].seconds);
  const rows = configs.map((c) => {
    const s = median(c.seconds), u = median(c.updateSeconds);
    return {
      name: c.name, seconds: s, ratioToDense: s / dense, updates: c.updates,
      updateMs: c.updates ? (1000 * u) / c.updates : 0, updateShare: u / s, testAccuracy: c.accuracy,
    };
  });
  if (common.json) {
    console.log(JSON.stringify({ bench: 'dst', iterations, runs, densityRule: rule, threads: context.settings.threads, simd: context.settings.simd, cpu: cpuModel(), configs: rows }));
    return;
  }
  console.log('');
  console.log('config        seconds  x dense  updates  ms/update  share in updates  test acc');
  for (const r of rows) {
    console.log(`${r.name.padEnd(12)} ${r.seconds.toFixed(3).padStart(8)} ${r.ratioToDense.toFixed(3).padStart(8)} ${String(r.updates).padStart(8)} ${r.updateMs.toFixed(2).padStart(10)} ${(100 * r.updateShare).toFixed(1).padStart(16)}% ${(100 * r.testAccuracy).toFixed(2).padStart(8)}%`);
  }
}

runBench('dst bench', main);
