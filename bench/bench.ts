/**
 * Training-speed benchmark: seconds per LeNet-300-100 epoch at the density ladder's levels.
 *
 *   npm run bench -- [--densities 1,0.513,...] [--runs 3] [--iterations 916] [--json]
 *                    [--vs-torch] [--reference] [--threads N]
 *                    [--full-imp false] [--full-imp-iterations 100]
 *
 * An epoch is lth's: ⌊55,000/60⌋ = 916 iterations of batch 60 on MNIST, Adam (lr 1.2e-3),
 * the same steps as the training loop in src/training/train.ts: the model and masks
 * compiled into the program train() would choose, stepped in the same runs (ending every
 * 100 iterations and at the epoch's end). Only training is timed; one evaluation pass over
 * validation + test (15,000 samples, program.evaluate) is timed and reported separately. Each figure is the median of --runs runs
 * after a short warm-up, the densities' runs interleaved; --iterations N times N
 * iterations per run and scales to 916.
 *
 * Masks: for an overall density d, the per-layer densities follow the paper's ladder
 * (fc1, fc2 pruned at 20% a round, the output layer at 10%): k is solved from
 * (265,200·0.8^k + 1,000·0.9^k)/266,200 = d, fc1/fc2 keep 0.8^k and fc3 0.9^k of their
 * weights, at uniformly random positions (seeded). (Magnitude
 * masks after MNIST training are more structured — whole border-pixel columns go first —
 * which a sparse kernel may find slightly easier; random positions are the harder case.)
 * Density 1 runs without masks.
 *
 * --reference also times the slow reference backend (in a child process with
 * LTH_BACKEND=reference, a few iterations scaled to an epoch, no evaluation pass).
 * --vs-torch runs bench/torch_lenet.py afterwards (not concurrently) with the same
 * densities, at 1 thread and at all cores with OpenBLAS on this CPU's own kernels
 * (bench/torch.ts), when a Python with PyTorch is found, and adds the faster epoch time per
 * density and the ratios lth/torch; without PyTorch it says so and goes on.
 *
 * --full-imp (on by default) estimates the paper's whole LeNet experiment: 21 IMP levels
 * k = 0..20 (fc1/fc2 keep 0.8^k, fc3 0.9^k, random positions as above), each trained
 * 50,000 iterations with validation + test evaluated every 100 (501 passes), one replicate.
 * Per level it runs train() as `lth lottery` does (evaluation every 100 iterations, in the
 * background thread by default) for --full-imp-iterations iterations and scales its wall
 * time to 50,000. An estimate, not a measured run: the level's fixed costs (starting the
 * evaluation thread, the first pass) are scaled too, so it errs high for short timings;
 * checkpoint writing and pruning are not included.
 *
 * Prints a table; with --json, one JSON object as the last stdout line (and no progress).
 */
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { resolveContext, type RunContext } from '../src/backend/index.js';
import { parseArgs, helpText } from '../src/cli/args.js';
import type { Schema } from '../src/core/hparams.js';
import { LthError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import type { Splits } from '../src/data/dataset.js';
import { getDataset } from '../src/data/registry.js';
import { getModel } from '../src/models/registry.js';
import type { Model, StateDict } from '../src/nn/model.js';
import { compileProgram } from '../src/program/compile.js';
import type { Program } from '../src/program/program.js';
import { iterationsPerEpoch, runEnd, train } from '../src/training/train.js';
import { findTorchPython, runTorch } from './torch.js';
import { cpuModel, machineLine, runBench } from './run.js';
import { median } from './stats.js';

const SCHEMA = {
  densities: { type: 'list', help: 'overall weight densities to time', default: ['1', '0.513', '0.211', '0.07', '0.036', '0.019'] },
  runs: { type: 'integer', help: 'timed runs per density; the median is reported', default: 3 },
  iterations: { type: 'integer', help: 'iterations timed per run, scaled to an epoch (default: a full epoch, 916)' },
  warmup: { type: 'integer', help: 'untimed iterations before the runs', default: 10 },
  eval: { type: 'boolean', help: 'also time one evaluation pass over validation + test (15,000 samples)', default: true },
  threads: { type: 'integer', help: "native backend threads (default: LTH_THREADS, else the machine's cores)" },
  reference: { type: 'boolean', help: 'also estimate the reference backend from a few iterations (slow)', default: false },
  referenceIterations: { type: 'integer', help: 'iterations per density for --reference', default: 3 },
  vsTorch: { type: 'boolean', help: 'also time PyTorch with bench/torch_lenet.py, when available', default: false },
  torchIterations: { type: 'integer', help: 'iterations per run for --vs-torch, scaled to an epoch', default: 100 },
  fullImp: { type: 'boolean', help: "estimate the paper's full LeNet IMP run (21 levels x 50,000 iterations) from a few timed iterations per level", default: true },
  fullImpIterations: { type: 'integer', help: 'iterations trained per level for --full-imp (evaluated every 100), scaled to 50,000', default: 2000 },
} as const satisfies Schema;

const USAGE = 'usage: npm run bench -- [options]   (or: node dist/bench/bench.js [options])';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BATCH = 60, LR = 1.2e-3, SEED = 0;
/** Weights per prunable layer of LeNet-300-100. */
const WEIGHTS = { fc1: 784 * 300, fc2: 300 * 100, fc3: 100 * 10 };
/** The paper's LeNet IMP run: levels 0..20, each trained 50,000 iterations, evaluated every 100 and at 0. */
const FULL_IMP = { levels: 21, iterations: 50_000, evalEvery: 100 };

interface Options {
  densities: string[]; runs: number; iterations?: number; warmup: number; eval: boolean;
  threads?: number; reference: boolean; referenceIterations: number; vsTorch: boolean; torchIterations: number;
  fullImp: boolean; fullImpIterations: number; json: boolean;
}

/** Per-layer weight densities: fc1 and fc2 share one, the output layer has its own. */
interface LayerDensities { fc: number; out: number }

/** Per-layer densities after k IMP rounds (fc 20%, output 10% a round). */
export function levelDensities(k: number): LayerDensities {
  return { fc: 0.8 ** k, out: 0.9 ** k };
}

/** Per-layer densities on the paper's ladder for overall density d (k need not be whole). */
export function ladderDensities(d: number): LayerDensities {
  if (d >= 1) return { fc: 1, out: 1 };
  const total = WEIGHTS.fc1 + WEIGHTS.fc2 + WEIGHTS.fc3;
  const at = (k: number) => ((WEIGHTS.fc1 + WEIGHTS.fc2) * 0.8 ** k + WEIGHTS.fc3 * 0.9 ** k) / total;
  let lo = 0, hi = 400;
  for (let i = 0; i < 200; i++) {
    const k = (lo + hi) / 2;
    if (at(k) > d) lo = k; else hi = k;
  }
  return levelDensities((lo + hi) / 2);
}

/** Random masks with round(density·n) ones per layer, from a seeded stream. */
function randomMasks(model: Model, { fc, out }: LayerDensities): StateDict {
  const outName = model.outputWeightName();
  const masks: StateDict = new Map();
  model.prunableNames().forEach((name, layer) => {
    const n = model.parameter(name).size;
    const keep = Math.round((name === outName ? out : fc) * n);
    const perm = new Rng(SEED, 'bench_mask', layer).permutation(n);
    const m = new Float32Array(n);
    for (let i = 0; i < keep; i++) m[perm[i]] = 1;
    masks.set(name, m);
  });
  return masks;
}

interface DensityResult {
  epochSeconds: number;
  runSeconds: number[];
  evalSeconds?: number;
  actualDensity: number;
}

/** A seeded LeNet-300-100 with random masks unless every layer is dense (then none), and its overall density. */
function buildModel(layers: LayerDensities): { model: Model; masks?: StateDict; density: number } {
  const model = getModel('lenet_300_100').build();
  model.initialize(new Rng(SEED, 'init'));
  if (layers.fc >= 1 && layers.out >= 1) return { model, density: 1 };
  let kept = 0, total = 0;
  const masks = randomMasks(model, layers);
  for (const m of masks.values()) { total += m.length; for (const v of m) kept += v; }
  return { model, masks, density: kept / total };
}

/**
 * trainer(data, program)(k) runs the next k training iterations as train()'s loop does,
 * with the program's own Adam and its data order: in runs that end at every evaluation
 * point (each FULL_IMP.evalEvery iterations) and at the epoch's end, each run one
 * program.step call.
 */
function trainer(data: Splits, program: Program): (iterations: number) => void {
  const train = data.train;
  const perEpoch = iterationsPerEpoch(train.length, BATCH);
  const losses = new Float64Array(FULL_IMP.evalEvery);
  let it = 0;
  let order = new Rng(SEED, 'data', 0).permutation(train.length);
  return (iterations) => {
    for (const stop = it + iterations; it < stop;) {
      const epoch = Math.floor(it / perEpoch), inEpoch = it % perEpoch;
      if (inEpoch === 0 && it > 0) order = new Rng(SEED, 'data', epoch).permutation(train.length);
      const end = runEnd(it, perEpoch, FULL_IMP.evalEvery, stop);
      const run = losses.subarray(0, end - it);
      const ran = program.step({ data: train, order, from: inEpoch * BATCH, batchSize: BATCH }, run);
      if (!Number.isFinite(run[ran - 1])) throw new LthError(`bench: loss is ${run[ran - 1]} at iteration ${it + ran - 1}`);
      it += ran;
    }
  };
}

/** Seconds for one evaluation pass over validation + test, as train() does every evalEvery iterations. */
function evalPass(program: Program, data: Splits): number {
  const t0 = performance.now();
  program.evaluate(data.validation);
  program.evaluate(data.test);
  return (performance.now() - t0) / 1000;
}

/**
 * Epoch times of every density, their runs interleaved (run r of each density, then run
 * r + 1 of each): this shared machine's speed drifts by tens of percent within minutes,
 * and interleaving lets each ratio compare runs made at the same time.
 */
function timeDensities(
  data: Splits, densities: string[], o: Options, iterations: number, context: RunContext, progress: (line: string) => void,
): Map<string, DensityResult> {
  const perEpoch = iterationsPerEpoch(data.train.length, BATCH);
  const runs = densities.map((d) => {
    const { model, masks, density } = buildModel(ladderDensities(Number(d)));
    const program = compileProgram(model, { masks, optimizer: { name: 'adam', lr: LR, momentum: 0, weightDecay: 0 }, context });
    const step = trainer(data, program);
    step(o.warmup);
    return { d, program, density, step, seconds: [] as number[] };
  });
  for (let r = 0; r < o.runs; r++) {
    for (const run of runs) {
      const t0 = performance.now();
      run.step(iterations);
      run.seconds.push(((performance.now() - t0) / 1000) * (perEpoch / iterations));
    }
    progress(`  run ${r + 1}/${o.runs}: ${runs.map((run) => `${run.d} ${fmt(run.seconds[r])} s`).join(', ')}`);
  }
  const results = new Map<string, DensityResult>();
  for (const run of runs) {
    let evalSeconds: number | undefined;
    if (o.eval) {
      const evals: number[] = [];
      for (let r = 0; r < o.runs; r++) evals.push(evalPass(run.program, data));
      evalSeconds = median(evals);
    }
    results.set(run.d, { epochSeconds: median(run.seconds), runSeconds: run.seconds, evalSeconds, actualDensity: run.density });
  }
  return results;
}

interface LevelEstimate {
  level: number;
  density: number;
  /** Wall seconds of train() over --full-imp-iterations iterations, evaluations included. */
  timedSeconds: number;
  levelSeconds: number;
}

/** One IMP level of the paper's run: train() as the lottery runs it, for a few thousand iterations, scaled to 50,000. */
function estimateLevel(data: Splits, k: number, o: Options, context: RunContext): LevelEstimate {
  const { model, masks, density } = buildModel(levelDensities(k));
  const r = train({
    model, masks, data, iterations: o.fullImpIterations, batchSize: BATCH, seed: SEED, evalEvery: FULL_IMP.evalEvery,
    optimizer: { name: 'adam', lr: LR, momentum: 0, weightDecay: 0 }, context,
  });
  return { level: k, density, timedSeconds: r.seconds, levelSeconds: (r.seconds * FULL_IMP.iterations) / o.fullImpIterations };
}

/** The last stdout line of a child that printed JSON there, or an Error saying what went wrong. */
function lastJsonLine(stdout: string): Record<string, unknown> | Error {
  const lines = stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  } catch {
    return new Error(`no JSON on the last stdout line: ${lines.slice(-3).join(' | ')}`);
  }
}

function fmt(s: number | undefined, digits = 3): string {
  return s === undefined || !Number.isFinite(s) ? '-' : s.toFixed(digits);
}

/** Right-aligned columns under a header row. */
function columns(cols: string[], rows: string[][]): string[] {
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(cols), ...rows.map(line)];
}

function fullImpTable(levels: LevelEstimate[], seconds: number, timed: number): string[] {
  const { levels: n, iterations, evalEvery } = FULL_IMP;
  return [
    `full-IMP estimate: the paper's LeNet run, ${n} levels x ${iterations.toLocaleString('en')} iterations of batch ${BATCH}, ` +
      `validation + test every ${evalEvery} iterations, 1 replicate`,
    ...columns(['level', 'density', `${timed} it (s)`, 'level (s)'], levels.map((l) => [
      String(l.level), `${(l.density * 100).toFixed(1)}%`, fmt(l.timedSeconds, 2), fmt(l.levelSeconds, 1)])),
    `total ≈ ${fmt(seconds / 60, 1)} min (${fmt(seconds, 0)} s): ${timed} iterations per level through train() (with its ` +
      'evaluations), scaled; an estimate, not a measured run; checkpoints and pruning not included',
  ];
}

function main(): void {
  const { values, common } = parseArgs(process.argv.slice(2), SCHEMA);
  if (common.help) {
    process.stdout.write(`${helpText(USAGE, SCHEMA)}\n`);
    return;
  }
  const o: Options = {
    densities: (values.densities as string[] | undefined) ?? [...SCHEMA.densities.default],
    runs: (values.runs as number | undefined) ?? SCHEMA.runs.default,
    iterations: values.iterations as number | undefined,
    warmup: (values.warmup as number | undefined) ?? SCHEMA.warmup.default,
    eval: (values.eval as boolean | undefined) ?? SCHEMA.eval.default,
    threads: values.threads as number | undefined,
    reference: (values.reference as boolean | undefined) ?? false,
    referenceIterations: (values.referenceIterations as number | undefined) ?? SCHEMA.referenceIterations.default,
    vsTorch: (values.vsTorch as boolean | undefined) ?? false,
    torchIterations: (values.torchIterations as number | undefined) ?? SCHEMA.torchIterations.default,
    fullImp: (values.fullImp as boolean | undefined) ?? SCHEMA.fullImp.default,
    fullImpIterations: (values.fullImpIterations as number | undefined) ?? SCHEMA.fullImpIterations.default,
    json: common.json,
  };
  for (const d of o.densities) {
    const v = Number(d);
    if (!(v > 0 && v <= 1)) throw new LthError(`--densities: each must be a number in (0, 1], got '${d}'`);
  }
  if (!(o.runs >= 1)) throw new LthError(`--runs must be at least 1, got ${o.runs}`);
  if (o.iterations !== undefined && !(o.iterations >= 1)) throw new LthError(`--iterations must be at least 1, got ${o.iterations}`);
  if (!(o.fullImpIterations >= 1)) throw new LthError(`--full-imp-iterations must be at least 1, got ${o.fullImpIterations}`);
  const progress = (line: string) => { if (!o.json) process.stderr.write(`${line}\n`); };

  const context = resolveContext({ threads: o.threads });
  const be = context.backend;
  const { threads, simd } = context.settings;

  progress('loading MNIST...');
  const data = getDataset('mnist').load(undefined, SEED);
  const perEpoch = iterationsPerEpoch(data.train.length, BATCH);
  const iterations = Math.min(o.iterations ?? perEpoch, perEpoch);
  const loadavg = os.loadavg();

  progress(`${be.name}: densities ${o.densities.join(', ')}, ${o.runs} interleaved runs of ${iterations} iterations each...`);
  const results = timeDensities(data, o.densities, o, iterations, context, progress);

  const levels: LevelEstimate[] = [];
  if (o.fullImp) {
    progress(`${be.name}: full-IMP estimate, ${FULL_IMP.levels} levels x ${o.fullImpIterations} iterations (train(), evaluated every ${FULL_IMP.evalEvery})...`);
    for (let k = 0; k < FULL_IMP.levels; k++) {
      levels.push(estimateLevel(data, k, o, context));
      progress(`  level ${k}: ${fmt(levels[k].timedSeconds, 2)} s -> ${fmt(levels[k].levelSeconds, 1)} s`);
    }
  }
  const fullImpSeconds = levels.reduce((sum, l) => sum + l.levelSeconds, 0);

  const out: Record<string, unknown> = {
    model: 'lenet_300_100',
    backend: be.name,
    simd,
    threads,
    cpu: cpuModel(),
    cores: os.cpus().length,
    node: process.version,
    loadavg1m: Number(loadavg[0].toFixed(2)),
    epochIterations: perEpoch,
    batchSize: BATCH,
    iterationsTimed: iterations,
    runs: o.runs,
    masks: 'random positions; per-layer densities on the paper ladder (fc1/fc2 0.8^k, fc3 0.9^k); density 1 unmasked',
    layerDensities: Object.fromEntries(o.densities.map((d) => {
      const { fc, out: outD } = ladderDensities(Number(d));
      return [d, { fc1: fc, fc2: fc, fc3: outD }];
    })),
    lenetEpochSeconds: Object.fromEntries([...results].map(([d, r]) => [d, r.epochSeconds])),
    runSeconds: Object.fromEntries([...results].map(([d, r]) => [d, r.runSeconds])),
  };
  if (o.eval) {
    out.evalSamples = data.validation.length + data.test.length;
    out.evalSeconds = Object.fromEntries([...results].map(([d, r]) => [d, r.evalSeconds]));
  }
  if (o.fullImp) {
    out.fullImpEstimate = {
      seconds: fullImpSeconds, iterationsTimed: o.fullImpIterations,
      iterationsPerLevel: FULL_IMP.iterations, evalEvery: FULL_IMP.evalEvery, levels,
    };
  }

  const self = fileURLToPath(import.meta.url);
  let reference: Record<string, number> | undefined;
  if (o.reference) {
    if (be.name === 'reference') {
      reference = out.lenetEpochSeconds as Record<string, number>;
    } else {
      progress(`reference: ${o.referenceIterations} iterations per density (estimate)...`);
      const { NODE_TEST_CONTEXT: _, ...env } = process.env;
      const child = spawnSync(process.execPath, [self, '--json', '--eval', 'false', '--full-imp', 'false', '--runs', '1', '--warmup', '1',
        '--iterations', String(o.referenceIterations), '--densities', o.densities.join(',')],
      { env: { ...env, LTH_BACKEND: 'reference' }, encoding: 'utf8', maxBuffer: 1 << 24 });
      const r = lastJsonLine(child.stdout ?? '');
      if (r instanceof Error || child.status !== 0) {
        progress(`reference run failed: ${r instanceof Error ? r.message : ''} ${child.stderr ?? ''}`);
      } else {
        reference = r.lenetEpochSeconds as Record<string, number>;
        out.referenceLenetEpochSeconds = reference;
        out.referenceIterationsTimed = o.referenceIterations;
      }
    }
  }

  let torch: Record<string, number> | undefined;
  let torchThreads: Record<string, number> | undefined;
  if (o.vsTorch) {
    const found = findTorchPython();
    if ('note' in found) {
      progress(found.note);
      out.torchNote = found.note;
      if (o.json) process.stderr.write(`${found.note}\n`);
    } else {
      const torchIterations = Math.min(o.torchIterations, iterations);
      progress(`torch (${found.python}): ${o.runs} x ${torchIterations} iterations per density, at 1 thread and at all cores...`);
      const runs = runTorch(found.python, path.join(ROOT, 'bench', 'torch_lenet.py'),
        ['--densities', o.densities.join(','), '--runs', String(o.runs), '--iterations', String(torchIterations)]);
      if (runs instanceof Error) {
        progress(runs.message);
        out.torchNote = runs.message;
      } else {
        // PyTorch at its best: per density, the faster of its thread counts.
        torch = {};
        torchThreads = {};
        for (const d of o.densities) {
          const best = runs.reduce((a, b) => ((b.result.lenetEpochSeconds as Record<string, number>)[d] < (a.result.lenetEpochSeconds as Record<string, number>)[d] ? b : a));
          torch[d] = (best.result.lenetEpochSeconds as Record<string, number>)[d];
          torchThreads[d] = best.threads;
        }
        const r = runs[0].result;
        out.torch = { version: r.torch, blas: r.blas, blasLibrary: r.blasLibrary, iterationsTimed: r.iterationsTimed, data: r.data, openblasCoretype: 'unset (this CPU\'s own kernels)' };
        out.torchLenetEpochSecondsByThreads = Object.fromEntries(runs.map((run) => [run.threads, run.result.lenetEpochSeconds]));
        out.torchLenetEpochSeconds = torch;
        out.torchBestThreads = torchThreads;
        out.lthOverTorch = Object.fromEntries([...results].map(([d, res]) => [d, res.epochSeconds / torch![d]]));
      }
    }
  }

  const dense = results.get('1')?.epochSeconds;
  const header = [`lth LeNet-300-100 epoch: ${perEpoch} iterations of batch ${BATCH}, Adam, training only ` +
    `(timed ${iterations} it/run, median of ${o.runs})`,
  `${machineLine(context)}; load ${loadavg[0].toFixed(2)}`];
  const cols = ['density', 's/epoch', 'vs dense', ...(o.eval ? [`eval ${data.validation.length + data.test.length} (s)`] : []),
    ...(reference ? ['reference s/epoch'] : []), ...(torch ? ['torch s/epoch', 'torch threads', 'lth/torch'] : [])];
  const rows = [...results].map(([d, r]) => [d, fmt(r.epochSeconds), dense ? fmt(r.epochSeconds / dense, 2) : '-',
    ...(o.eval ? [fmt(r.evalSeconds)] : []),
    ...(reference ? [fmt(reference[d], 1)] : []),
    ...(torch ? [fmt(torch[d], 2), String(torchThreads![d]), fmt(r.epochSeconds / torch[d], 3)] : [])]);
  const table = [...header, ...columns(cols, rows)];
  if (torch) {
    const t = out.torch as Record<string, unknown>;
    const lib = typeof t.blasLibrary === 'string' ? path.basename(t.blasLibrary.split(', ').pop()!) : String(t.blas);
    table.push(`torch ${String(t.version)} at its best of 1 and ${os.availableParallelism()} threads, BLAS ${lib} on this CPU's own kernels, glibc's malloc keeping freed memory; timed ${String(t.iterationsTimed)} it/run: dense compute, masks re-applied after each step`);
  }
  if (o.fullImp) table.push('', ...fullImpTable(levels, fullImpSeconds, o.fullImpIterations));
  process.stdout.write(`${table.join('\n')}\n`);
  if (o.json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

runBench('bench', main);
