/**
 * Sparse vs dense training of LeNet-300-100: seconds per training epoch (916 iterations of
 * batch 60, Adam, training only) at IMP densities, with the automatic per-layer choice
 * (sparse mode auto, its program chosen as train() chooses it) and forced dense (sparse
 * off, the graph program), the median of several runs of
 * `--iters` iterations scaled to 916; plus one evaluation pass over 15,000 samples (batch
 * 1000). `--threshold` also times one masked layer dense vs sparse on the LeNet shapes to
 * locate the crossover density. Synthetic N(0,1) inputs (the kernels' cost does not depend
 * on the values). `--json`: one object as the last stdout line.
 *
 * node dist/bench/sparse.js [--json] [--iters 200] [--runs 3] [--threshold]
 */
import { resolveContext } from '../src/backend/index.js';
import { Rng } from '../src/core/rng.js';
import { Dataset } from '../src/data/dataset.js';
import { getModel } from '../src/models/registry.js';
import type { Model } from '../src/nn/model.js';
import { compileProgram } from '../src/program/compile.js';
import { linear } from '../src/tensor/ops.js';
import { maskPattern, packValues, sparseLinear } from '../src/tensor/sparse.js';
import { Tensor, noGrad } from '../src/tensor/tensor.js';
import { median } from './stats.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const ITERS = opt('--iters', 200), RUNS = opt('--runs', 3), EPOCH = 916, BATCH = 60;
const log = (s: string) => { if (!json) process.stdout.write(s + '\n'); };

/** IMP level k: fully connected layers keep 0.8^k, the output layer 0.9^k. */
const LEVELS: Record<string, number> = { '1': 0, '0.513': 3, '0.211': 7, '0.07': 12, '0.036': 15, '0.019': 18 };

function buildModel(level: number, rng: Rng): { model: Model; masks?: Map<string, Float32Array> } {
  const model = getModel('lenet_300_100').build();
  model.initialize(rng);
  const masks = new Map<string, Float32Array>();
  for (const l of model.prunableLayers()) {
    const size = model.parameter(l.name).size;
    const keep = (l.output ? 0.9 : 0.8) ** level;
    const m = new Float32Array(size);
    for (let i = 0; i < size; i++) m[i] = rng.uniform() < keep ? 1 : 0;
    masks.set(l.name, m);
  }
  return { model, masks: level > 0 ? masks : undefined };
}

const rng = new Rng(0, 'bench');
const train = new Dataset(Float32Array.from({ length: 8 * BATCH * 784 }, () => rng.normal()), Int32Array.from({ length: 8 * BATCH }, (_, i) => i % 10), [784], 10);
const order = Int32Array.from({ length: train.length }, (_, i) => i);
const evalData = new Dataset(Float32Array.from({ length: 15000 * 784 }, () => rng.normal()), Int32Array.from({ length: 15000 }, (_, i) => i % 10), [784], 10);

function program(level: number, mode: 'auto' | 'off') {
  const { model, masks } = buildModel(level, new Rng(1, 'init'));
  return compileProgram(model, { masks, optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 }, context: resolveContext({ sparse: mode }) });
}

function epochSeconds(level: number, mode: 'auto' | 'off'): number {
  const p = program(level, mode);
  const losses = new Float64Array(8);
  const steps = (n: number) => {
    for (let done = 0; done < n; done += 8) p.step({ data: train, order, from: 0, batchSize: BATCH }, losses.subarray(0, Math.min(8, n - done)));
  };
  steps(20);
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    steps(ITERS);
    times.push((performance.now() - t0) / 1000 * EPOCH / ITERS);
  }
  return median(times);
}

function evalSeconds(level: number, mode: 'auto' | 'off'): number {
  {
    const p = program(level, mode);
    const pass = () => p.evaluate(evalData);
    pass();
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      pass();
      times.push((performance.now() - t0) / 1000);
    }
    return median(times);
  }
}

/** Microseconds of one masked layer (forward + backward, or forward only) dense vs sparse. */
function layerMicros(out: number, inF: number, n: number, density: number, train: boolean): { dense: number; sparse: number } {
  const r = new Rng(3, 'layer');
  const w = Tensor.zeros([out, inF], true), b = Tensor.zeros([out], true);
  const m = new Float32Array(w.size);
  for (let i = 0; i < m.length; i++) { m[i] = r.uniform() < density ? 1 : 0; w.data[i] = m[i] ? r.normal() * 0.05 : 0; }
  const x = new Tensor(Float32Array.from({ length: n * inF }, () => r.normal()), [n, inF], true);
  const { pattern } = maskPattern(m, out, inF);
  const vals = new Tensor(packValues(pattern, w.data), [pattern.nnz], true);
  const g = new Float32Array(n * out).fill(1e-3);
  const once = (sparse: boolean) => {
    const run = () => (sparse ? sparseLinear(x, vals, pattern, b, 'relu') : linear(x, w, b, 'relu'));
    if (!train) { noGrad(run); return; }
    const y = run();
    y.grad = g;
    // The recorded ops of y, in reverse: fromPanels, the sparse layer, toPanels (or the one dense op).
    const ops: Tensor[] = [];
    for (let t: Tensor | undefined = y; t && t.backwardFn; t = t.parents[0]) ops.push(t);
    for (const t of ops) { t.backwardFn!(); t.backwardFn = null; }
  };
  const time = (sparse: boolean) => {
    const reps = Math.max(20, Math.round(2e7 / (n * inF * out * Math.max(density, 0.05))));
    for (let i = 0; i < 5; i++) once(sparse);
    const ts: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) once(sparse);
      ts.push((performance.now() - t0) * 1000 / reps);
    }
    return median(ts);
  };
  return { dense: time(false), sparse: time(true) };
}

const result: Record<string, unknown> = { backend: resolveContext().settings.backend, iters: ITERS, runs: RUNS };
if (args.includes('--threshold')) {
  const rows: Array<Record<string, number | string>> = [];
  log('layer       batch  pass   density  dense us  sparse us');
  for (const [out, inF] of [[300, 784], [100, 300], [10, 100]]) {
    for (const [n, train] of [[60, true], [1000, false]] as const) {
      for (const d of [0.05, 0.1, 0.2, 0.3, 0.4, 0.5]) {
        const t = layerMicros(out, inF, n, d, train);
        rows.push({ layer: `${inF}x${out}`, batch: n, pass: train ? 'fwd+bwd' : 'fwd', density: d, dense: t.dense, sparse: t.sparse });
        log(`${`${inF}x${out}`.padEnd(11)} ${String(n).padStart(5)}  ${(train ? 'f+b' : 'fwd').padEnd(5)}  ${d.toFixed(2).padStart(7)}  ${t.dense.toFixed(1).padStart(8)}  ${t.sparse.toFixed(1).padStart(9)}`);
      }
    }
  }
  result.threshold = rows;
}

const lenetEpochSeconds: Record<string, number> = {}, lenetEpochSecondsDense: Record<string, number> = {};
const evalPass: Record<string, number> = {}, evalPassDense: Record<string, number> = {};
log('density  epoch auto s  epoch dense s  ratio  eval auto s  eval dense s');
for (const [d, level] of Object.entries(LEVELS)) {
  lenetEpochSeconds[d] = epochSeconds(level, 'auto');
  lenetEpochSecondsDense[d] = epochSeconds(level, 'off');
  evalPass[d] = evalSeconds(level, 'auto');
  evalPassDense[d] = evalSeconds(level, 'off');
  log(`${d.padEnd(7)}  ${lenetEpochSeconds[d].toFixed(3).padStart(12)}  ${lenetEpochSecondsDense[d].toFixed(3).padStart(13)}  ${(lenetEpochSeconds[d] / lenetEpochSecondsDense['1']).toFixed(3).padStart(5)}  ${evalPass[d].toFixed(3).padStart(11)}  ${evalPassDense[d].toFixed(3).padStart(12)}`);
}
Object.assign(result, { lenetEpochSeconds, lenetEpochSecondsDense, evalPassSeconds: evalPass, evalPassSecondsDense: evalPassDense });
if (json) process.stdout.write(JSON.stringify(result) + '\n');
