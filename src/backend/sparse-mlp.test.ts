/**
 * The sparse-MLP program's kernels (SparseMlpKernels: prepare, step, evaluate): native against the reference's
 * composition of its kernels, and the reference against a dense masked network computed
 * with the reference's dense kernels; chains of one to three layers, batches from 1 to
 * 130 (several panels), densities 0 to 1, one nonzero, empty rows and columns, inputs
 * that are not a multiple of 8, repeated and offset indices, no bias, NaN; the Adam and
 * SGD updates applied in the same call equal the adam / sgd kernels after the step, and
 * none is applied on a NaN loss; the result is bitwise the same on 1 and 2 threads,
 * gradients accumulate, bad arguments are refused. The fused evaluation (sparseMlpEval)
 * likewise: loss and correct count against the dense network, first-maximum ties, NaN,
 * threads, bad arguments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { referenceBackend, referenceSparseMlp, loadNative, type Backend, type SparseMlpKernels } from './index.js';
import type { SparseMlpLayer, UpdateRule } from './sparse-mlp.js';
import { onEverySimdPath, prng, randomArray } from './testing.js';

/**
 * A backend's kernels with the program's calls as one-shot functions: a chain prepared
 * (with two parts) and stepped or evaluated once.
 */
interface Kernels extends Backend {
  readonly mlp: SparseMlpKernels;
  sparseMlpStep(src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    layers: readonly SparseMlpLayer[], update: UpdateRule | null, losses?: Float64Array): number;
  sparseMlpEval(src: Float32Array, srcLabels: Int32Array, layers: readonly SparseMlpLayer[]): { loss: number; correct: number };
}
function kernels(be: Backend, mlp: SparseMlpKernels): Kernels {
  return {
    ...be, mlp,
    sparseMlpStep(src, srcLabels, indices, from, n, layers, update, losses = new Float64Array(1)) {
      const ran = mlp.step(mlp.prepare(layers, 2), src, srcLabels, indices, from, n, update, losses);
      return losses[ran - 1];
    },
    sparseMlpEval: (src, srcLabels, layers) => mlp.evaluate(mlp.prepare(layers, 2), src, srcLabels),
  };
}

const loaded = loadNative();
const ref = kernels(referenceBackend, referenceSparseMlp);
const native: Kernels | null = loaded instanceof Error ? null : kernels(loaded, loaded.sparseMlp);
const nativeAddon = loaded instanceof Error ? null : loaded;
const setThreads = (n: number) => (loaded as Exclude<typeof loaded, Error>).setThreads(n);
const getThreads = () => (loaded as Exclude<typeof loaded, Error>).getThreads();
const skip = native === null;

interface LayerSpec { rows: number; cols: number; density: number; relu: boolean; bias: boolean; emptyRow?: number; emptyCol?: number }

interface Net {
  specs: LayerSpec[];
  masks: Float32Array[];
  weights: Float32Array[];
  biases: Array<Float32Array | null>;
}

function makeNet(specs: LayerSpec[], seed: number): Net {
  const rnd = prng(seed);
  const masks = specs.map((s) => {
    const m = new Float32Array(s.rows * s.cols);
    for (let r = 0; r < s.rows; r++) {
      for (let c = 0; c < s.cols; c++) m[r * s.cols + c] = r !== s.emptyRow && c !== s.emptyCol && rnd() < s.density ? 1 : 0;
    }
    return m;
  });
  const weights = specs.map((s, l) => randomArray(s.rows * s.cols, rnd, -0.5, 0.5).map((w, i) => (masks[l][i] ? w : 0)));
  const biases = specs.map((s) => (s.bias ? randomArray(s.rows, rnd, -0.2, 0.2) : null));
  return { specs, masks, weights, biases };
}

/** The layers of `net` for backend `be`, with fresh gradient buffers. */
function layersFor(be: Backend, net: Net): SparseMlpLayer[] {
  return net.specs.map((s, l) => {
    const pattern = be.sparsePattern(net.masks[l], s.rows, s.cols);
    return {
      pattern, vals: Float32Array.from(pattern.flat, (i) => net.weights[l][i]), bias: net.biases[l],
      gvals: new Float32Array(pattern.nnz), gbias: s.bias ? new Float32Array(s.rows) : null, relu: s.relu,
    };
  });
}

/** The dense weight gradients of `layers` (scattered from the packed ones). */
function denseGrads(layers: SparseMlpLayer[]): Float32Array[] {
  return layers.map((l) => {
    const g = new Float32Array(l.pattern.rows * l.pattern.cols);
    for (let k = 0; k < l.pattern.nnz; k++) g[l.pattern.flat[k]] = l.gvals[k];
    return g;
  });
}

/** The same step as a dense masked network on the reference's dense kernels: loss, weight (masked unless `masked` is false) and bias gradients. */
function denseStep(net: Net, x: Float32Array, labels: Int32Array, n: number, masked = true) {
  const acts = [x];
  net.specs.forEach((s, l) => {
    const y = new Float32Array(n * s.rows);
    ref.matmul(acts[l], net.weights[l], y, n, s.cols, s.rows, false, true, false);
    ref.biasAct(y, net.biases[l] ?? new Float32Array(s.rows), y, n, s.rows, s.relu);
    acts.push(y);
  });
  const last = net.specs[net.specs.length - 1];
  let g = new Float32Array(n * last.rows);
  const loss = ref.softmaxXent(acts[acts.length - 1], labels, n, last.rows, g, 1 / n) / n;
  const gw: Float32Array[] = [], gb: Float32Array[] = [];
  for (let l = net.specs.length - 1; l >= 0; l--) {
    const s = net.specs[l];
    if (s.relu) g = g.map((v, i) => (acts[l + 1][i] > 0 ? v : 0));
    gw[l] = new Float32Array(s.rows * s.cols);
    ref.matmul(g, acts[l], gw[l], s.rows, n, s.cols, true, false, false);
    if (masked) ref.applyMask(gw[l], net.masks[l], s.rows * s.cols);
    gb[l] = new Float32Array(s.rows);
    ref.sumRows(g, gb[l], n, s.rows, false);
    const gx = new Float32Array(n * s.cols);
    ref.matmul(g, net.weights[l], gx, n, s.rows, s.cols, false, false, false);
    g = gx;
  }
  return { loss, gw, gb };
}

/** max|a - b| / max(1e-3, max|b|): gradients are compared relative to their scale. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 1e-3;
  for (let i = 0; i < b.length; i++) {
    den = Math.max(den, Math.abs(b[i]));
    const d = Math.abs(a[i] - b[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
  }
  return num / den;
}

interface Case { name: string; inputs: number; specs: Array<Omit<LayerSpec, 'cols'>>; n: number; samples: number; from: number }

const hidden = (rows: number, density: number, extra: Partial<LayerSpec> = {}) => ({ rows, density, relu: true, bias: true, ...extra });
const output = (rows: number, density: number, extra: Partial<LayerSpec> = {}) => ({ rows, density, relu: false, bias: true, ...extra });

const cases: Case[] = [
  { name: 'LeNet-like, batch 60', inputs: 100, specs: [hidden(40, 0.1), hidden(20, 0.3), output(10, 0.5)], n: 60, samples: 200, from: 7 },
  { name: 'batch 1', inputs: 30, specs: [hidden(12, 0.4), output(5, 0.6)], n: 1, samples: 9, from: 3 },
  { name: 'batch 17, inputs not a multiple of 8', inputs: 13, specs: [hidden(9, 0.5), output(4, 0.7)], n: 17, samples: 40, from: 0 },
  { name: 'batch 130 (three panels)', inputs: 70, specs: [hidden(33, 0.2), output(7, 0.5)], n: 130, samples: 300, from: 11 },
  { name: 'one layer, no relu', inputs: 50, specs: [output(6, 0.3)], n: 25, samples: 60, from: 2 },
  { name: 'density 0 in the first layer', inputs: 20, specs: [hidden(8, 0), output(3, 0.5)], n: 20, samples: 30, from: 0 },
  { name: 'a single nonzero', inputs: 16, specs: [hidden(6, 0.02), output(3, 1)], n: 33, samples: 50, from: 1 },
  { name: 'dense layers, empty rows and columns', inputs: 24, specs: [hidden(10, 1, { emptyRow: 3, emptyCol: 5 }), hidden(8, 1, { emptyRow: 0 }), output(4, 1)], n: 48, samples: 64, from: 16 },
  { name: 'no biases', inputs: 40, specs: [hidden(16, 0.3, { bias: false }), output(5, 0.6, { bias: false })], n: 31, samples: 45, from: 4 },
];

function setUp(c: Case, seed: number) {
  const rnd = prng(seed);
  const specs: LayerSpec[] = [];
  let cols = c.inputs;
  for (const s of c.specs) {
    specs.push({ ...s, cols });
    cols = s.rows;
  }
  const net = makeNet(specs, seed + 1);
  const classes = specs[specs.length - 1].rows;
  const src = randomArray(c.samples * c.inputs, rnd, -2, 2);
  const srcLabels = Int32Array.from({ length: c.samples }, () => Math.floor(rnd() * classes));
  // Indices with repeats, longer than the batch, so the step must start at `from`.
  const indices = Int32Array.from({ length: c.from + 2 * c.n }, () => Math.floor(rnd() * c.samples));
  return { net, src, srcLabels, indices };
}

for (const c of cases) {
  test(`sparseMlpStep ${c.name}: native (every SIMD path) = reference = dense masked`, { skip }, () => {
    const { net, src, srcLabels, indices } = setUp(c, c.inputs * 7 + c.n);
    const x = new Float32Array(c.n * c.inputs), labels = new Int32Array(c.n);
    ref.gatherRows(src, c.inputs, indices, c.from, c.n, x);
    for (let i = 0; i < c.n; i++) labels[i] = srcLabels[indices[c.from + i]];
    const dense = denseStep(net, x, labels, c.n);
    const check = (be: Kernels, what: string) => {
      const layers = layersFor(be, net);
      const loss = be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, layers, null);
      assert.ok(Math.abs(loss - dense.loss) <= 1e-5 * Math.abs(dense.loss), `${what}: loss ${loss} vs dense ${dense.loss}`);
      denseGrads(layers).forEach((g, l) => {
        const e = relErr(g, dense.gw[l]);
        assert.ok(e <= 1e-5, `${what}: layer ${l} weight gradient rel err ${e}`);
        const gb = layers[l].gbias;
        if (gb) assert.ok(relErr(gb, dense.gb[l]) <= 1e-5, `${what}: layer ${l} bias gradient rel err ${relErr(gb, dense.gb[l])}`);
      });
    };
    check(ref, ref.name);
    onEverySimdPath(nativeAddon!, (p) => check(native!, `${native!.name} ${p}`));
  });
}

test('sparseMlpStep: bitwise the same on 1 and 2 threads; gradients accumulate', { skip }, () => {
  const c = cases[0];
  const { net, src, srcLabels, indices } = setUp(c, 5);
  const before = getThreads();
  const run = (threads: number) => {
    setThreads(threads);
    const layers = layersFor(native!, net);
    const loss = native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, layers, null);
    return { loss, layers };
  };
  try {
    const one = run(1), two = run(2);
    assert.equal(one.loss, two.loss);
    one.layers.forEach((l, i) => {
      assert.deepEqual(l.gvals, two.layers[i].gvals, `layer ${i} gvals`);
      assert.deepEqual(l.gbias, two.layers[i].gbias, `layer ${i} gbias`);
    });
    // A second step on the same buffers adds the same gradient again.
    native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, two.layers, null);
    two.layers.forEach((l, i) => {
      for (let k = 0; k < l.gvals.length; k++) assert.equal(l.gvals[k], 2 * one.layers[i].gvals[k], `layer ${i} gvals[${k}] after two steps`);
    });
  } finally {
    setThreads(before);
  }
});

test('sparseMlpStep: a NaN input makes the loss NaN on both backends', { skip }, () => {
  const c = cases[1];
  const { net, src, srcLabels, indices } = setUp(c, 9);
  src.fill(NaN, indices[c.from] * c.inputs, indices[c.from] * c.inputs + 1);
  for (const be of [ref, native!]) {
    assert.ok(Number.isNaN(be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, layersFor(be, net), null)), be.name);
  }
});

test('sparseMlpStep validates its arguments', { skip }, () => {
  const c = cases[2];
  const { net, src, srcLabels, indices } = setUp(c, 3);
  for (const be of [ref, native!]) {
    const layers = layersFor(be, net);
    const badLabels = Int32Array.from(srcLabels);
    badLabels[indices[c.from + 2]] = 4;
    assert.throws(() => be.sparseMlpStep(src, badLabels, indices, c.from, c.n, layers, null), /srcLabels\[\d+\] = 4 is outside \[0, 4\)/, be.name);
    const badIndices = Int32Array.from(indices);
    badIndices[c.from + 1] = c.samples;
    assert.throws(() => be.sparseMlpStep(src, srcLabels, badIndices, c.from, c.n, layers, null), /indices\[\d+\] = 40/, be.name);
    assert.throws(() => be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, [layers[1], layers[0]], null), /layer 1 takes 13 inputs but layer 0 gives 4/, be.name);
  }
  const layers = layersFor(native!, net);
  assert.throws(() => native!.sparseMlpStep(src.subarray(1), srcLabels, indices, c.from, c.n, layers, null), /not a whole number of samples of 13/);
  assert.throws(() => native!.sparseMlpStep(src, srcLabels, indices, indices.length, c.n, layers, null), /indices has \d+ elements, needs from\+n/);
  const short = [{ ...layers[0], gvals: new Float32Array(1) }, layers[1]];
  assert.throws(() => native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, short, null), /layer 0 gvals has 1 elements, needs nnz/);
  const aliased = [{ ...layers[0], gvals: layers[0].vals }, layers[1]];
  assert.throws(() => native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, aliased, null), /must not share memory/);
});

test('a prepared chain reads and writes its layers\' arrays in place from step to step', { skip }, () => {
  const c = cases[2];
  const { net, src, srcLabels, indices } = setUp(c, 4);
  for (const be of [ref, native!]) {
    const layers = layersFor(be, net), want = layersFor(be, net);
    const chain = be.mlp.prepare(layers, 2);
    const losses = new Float64Array(1);
    be.mlp.step(chain, src, srcLabels, indices, c.from, c.n, null, losses);
    // Doubled values in layer 1, written into the prepared arrays: the next step reads them.
    layers[1].vals.forEach((v, k) => { layers[1].vals[k] = 2 * v; });
    layers[0].gvals.fill(0);
    layers[0].gbias!.fill(0);
    be.mlp.step(chain, src, srcLabels, indices, c.from, c.n, null, losses);
    const changed = [want[0], { ...want[1], vals: want[1].vals.map((v) => 2 * v) }];
    const expected = be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, changed, null);
    assert.equal(losses[0], expected, `${be.name}: loss after the values changed`);
    assert.deepEqual(layers[0].gvals, changed[0].gvals, `${be.name}: layer 0 gradient after the values changed`);
  }
  // A refused chain leaves the next good one working.
  const layers = layersFor(native!, net);
  assert.throws(() => native!.mlp.prepare([layers[1], layers[0]], 2), /layer 1 takes/);
  assert.ok(Number.isFinite(native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, layers, null)));
});

test('sparseMlpStep on consecutive batches = reference, also when the next batch changes after the native step read it ahead', { skip }, () => {
  const c = { ...cases[0], from: 0 };
  const { net, src, srcLabels } = setUp(c, 13);
  const rnd = prng(99);
  const indices = Int32Array.from({ length: 4 * c.n }, () => Math.floor(rnd() * c.samples));
  const layers = layersFor(native!, net), want = layersFor(ref, net);
  const step = (data: Float32Array, from: number, what: string) => {
    const got = native!.sparseMlpStep(data, srcLabels, indices, from, c.n, layers, null);
    const expected = ref.sparseMlpStep(data, srcLabels, indices, from, c.n, want, null);
    assert.ok(Math.abs(got - expected) <= 1e-5 * Math.abs(expected), `${what}: loss ${got} vs ${expected}`);
    // The gradients add up over the steps on both backends.
    denseGrads(layers).forEach((g, l) => {
      const e = relErr(g, denseGrads(want)[l]);
      assert.ok(e <= 1e-5, `${what}: layer ${l} weight gradient rel err ${e}`);
    });
  };
  step(src, 0, 'the first batch');
  step(src, c.n, 'the second batch');
  indices[2 * c.n + 5] = (indices[2 * c.n + 5] + 1) % c.samples;
  step(src, 2 * c.n, 'a third batch changed in place');
  step(src.map((v) => -v), 3 * c.n, 'the fourth batch from another data set');
});

test('a chain with other inputs does not take the batch another chain read ahead from the same src', { skip }, () => {
  // Net b reads the same src as rows of half the width (twice the samples): its step at the
  // rows net a's step read ahead must gather them again, at its own width.
  const a = { ...cases[0], from: 0 }, b: Case = { ...a, inputs: a.inputs / 2, samples: 2 * a.samples };
  const { net, src, srcLabels } = setUp(a, 21);
  const other = setUp(b, 22);
  const indices = Int32Array.from({ length: 2 * a.n }, (_, i) => (7 * i) % a.samples);
  native!.sparseMlpStep(src, srcLabels, indices, 0, a.n, layersFor(native!, net), null);
  const got = native!.sparseMlpStep(src, other.srcLabels, indices, a.n, a.n, layersFor(native!, other.net), null);
  const expected = ref.sparseMlpStep(src, other.srcLabels, indices, a.n, a.n, layersFor(ref, other.net), null);
  assert.ok(Math.abs(got - expected) <= 1e-5 * Math.abs(expected), `loss ${got} vs ${expected}`);
});

/** sparseMlpDenseGrad on a chain prepared with two parts: the dense gradients of the layers in `wanted` (others null) and the loss. */
function denseGradOf(be: Kernels, layers: SparseMlpLayer[], src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number, wanted: number[]) {
  const outs = layers.map((l, i) => (wanted.includes(i) ? new Float32Array(l.pattern.rows * l.pattern.cols).fill(NaN) : null));
  const loss = be.mlp.denseGrad(be.mlp.prepare(layers, 2), src, srcLabels, indices, from, n, outs);
  return { loss, outs };
}

for (const c of cases) {
  test(`sparseMlpDenseGrad ${c.name}: native = reference = the dense network's gradient at every entry; the chain unchanged`, { skip }, () => {
    const { net, src, srcLabels, indices } = setUp(c, c.inputs * 5 + c.n);
    const x = new Float32Array(c.n * c.inputs), labels = new Int32Array(c.n);
    ref.gatherRows(src, c.inputs, indices, c.from, c.n, x);
    for (let i = 0; i < c.n; i++) labels[i] = srcLabels[indices[c.from + i]];
    const dense = denseStep(net, x, labels, c.n, false);
    const all = c.specs.map((_, l) => l);
    for (const be of [ref, native!]) {
      for (const wanted of [all, [c.specs.length - 1], [0]]) {
        const layers = layersFor(be, net);
        const { loss, outs } = denseGradOf(be, layers, src, srcLabels, indices, c.from, c.n, wanted);
        assert.ok(Math.abs(loss - dense.loss) <= 1e-5 * Math.abs(dense.loss), `${be.name}: loss ${loss} vs dense ${dense.loss}`);
        outs.forEach((g, l) => {
          if (!g) return assert.ok(!wanted.includes(l));
          const e = relErr(g, dense.gw[l]);
          assert.ok(e <= 1e-5, `${be.name} layers ${wanted}: layer ${l} dense gradient rel err ${e}`);
        });
        layers.forEach((l, i) => assert.ok(l.gvals.every((v) => v === 0) && (l.gbias ?? []).every((v) => v === 0), `${be.name}: layer ${i} gradients untouched`));
      }
    }
  });
}

test('sparseMlpDenseGrad: bitwise the same on 1, 2 and 3 threads; the next step reads the batch it gathered as its own', { skip }, () => {
  // Big enough for its GEMMs to split across threads (100 x 64 x 300 multiply-adds a panel), two panels.
  const c: Case = { name: 'wide', inputs: 300, specs: [hidden(100, 0.1), hidden(30, 0.3), output(10, 0.5)], n: 100, samples: 400, from: 5 };
  const { net, src, srcLabels, indices } = setUp(c, 17);
  const before = getThreads();
  try {
    const runs = [1, 2, 3].map((threads) => {
      setThreads(threads);
      return denseGradOf(native!, layersFor(native!, net), src, srcLabels, indices, c.from, c.n, [0, 1, 2]);
    });
    for (const r of runs.slice(1)) {
      assert.equal(r.loss, runs[0].loss);
      r.outs.forEach((g, l) => assert.deepEqual(g, runs[0].outs[l], `layer ${l}`));
    }
  } finally {
    setThreads(before);
  }
  // A step after it, on the same chain and rows, equals a step on a fresh chain.
  const layers = layersFor(native!, net), fresh = layersFor(native!, net);
  const chain = native!.mlp.prepare(layers, 2), losses = new Float64Array(2);
  native!.mlp.step(chain, src, srcLabels, indices, c.from - 5, c.n, null, new Float64Array(1));
  layers.forEach((l) => { l.gvals.fill(0); l.gbias?.fill(0); });
  native!.mlp.denseGrad(chain, src, srcLabels, indices, c.from, c.n, [null, new Float32Array(30 * 100), null]);
  native!.mlp.step(chain, src, srcLabels, indices, c.from, c.n, null, losses.subarray(0, 1));
  assert.equal(losses[0], native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, fresh, null));
  layers.forEach((l, i) => assert.deepEqual(l.gvals, fresh[i].gvals, `layer ${i} gvals`));
});

test('sparseMlpDenseGrad validates its arguments', { skip }, () => {
  const c = cases[2];
  const { net, src, srcLabels, indices } = setUp(c, 3);
  for (const be of [ref, native!]) {
    const layers = layersFor(be, net), chain = be.mlp.prepare(layers, 2);
    const out0 = new Float32Array(9 * 13);
    assert.throws(() => be.mlp.denseGrad(chain, src, srcLabels, indices, c.from, c.n, [out0]), /expected 2 outs \(one per layer, or null\)/, be.name);
    assert.throws(() => be.mlp.denseGrad(chain, src, srcLabels, indices, c.from, c.n, [new Float32Array(5), null]), /layer 0 out has 5 elements, needs rows\*cols/, be.name);
    const badIndices = Int32Array.from(indices);
    badIndices[c.from + 1] = c.samples;
    assert.throws(() => be.mlp.denseGrad(chain, src, srcLabels, badIndices, c.from, c.n, [out0, null]), /indices\[\d+\] = 40/, be.name);
    assert.throws(() => be.mlp.denseGrad(chain, src, srcLabels, indices, indices.length, c.n, [out0, null]), /indices has \d+ elements, needs from\+n/, be.name);
  }
  const layers = layersFor(native!, net), chain = native!.mlp.prepare(layers, 2);
  assert.throws(() => native!.mlp.denseGrad(chain, src, srcLabels, indices, c.from, c.n, [null, src.subarray(0, 36)]), /out 1 must not share memory/);
});

/** Optimiser state for every layer of `layers` (random moments, so the update reads them). */
function withState(layers: SparseMlpLayer[], rule: UpdateRule, seed: number): SparseMlpLayer[] {
  const rnd = prng(seed);
  const arrays = (n: number) => (rule.kind === 'adam' ? [randomArray(n, rnd, -0.01, 0.01), randomArray(n, rnd, 0, 1e-4)] : [randomArray(n, rnd, -0.01, 0.01)]);
  return layers.map((l) => ({ ...l, state: { weight: arrays(l.pattern.nnz), bias: arrays(l.pattern.rows) } }));
}

const copyLayer = (l: SparseMlpLayer): SparseMlpLayer => ({
  ...l, vals: l.vals.slice(), bias: l.bias && l.bias.slice(), gvals: l.gvals.slice(), gbias: l.gbias && l.gbias.slice(),
  state: l.state && { weight: l.state.weight.map((a) => a.slice()), bias: l.state.bias.map((a) => a.slice()) },
});

for (const rule of [
  { kind: 'adam', lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3 },
  { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3 },
] as UpdateRule[]) {
  test(`sparseMlpStep with a ${rule.kind} update = the step, then the ${rule.kind} kernel (native, reference)`, { skip }, () => {
    const c = cases[0];
    const { net, src, srcLabels, indices } = setUp(c, 21);
    for (const be of [ref, native!]) {
      const fused = withState(layersFor(be, net), rule, 4);
      const apart = fused.map(copyLayer);
      const loss = be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, fused, rule);
      assert.equal(be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, apart, null), loss, `${be.name}: loss`);
      for (const l of apart) {
        const step = (p: Float32Array, g: Float32Array, [s0, s1]: readonly Float32Array[]) => (rule.kind === 'adam'
          ? be.adam(p, g, s0, s1, null, p.length, rule.lr, rule.beta1, rule.beta2, rule.eps, rule.step)
          : be.sgd(p, g, s0, null, p.length, rule.lr, rule.momentum, rule.weightDecay));
        step(l.vals, l.gvals, l.state!.weight);
        step(l.bias!, l.gbias!, l.state!.bias);
      }
      fused.forEach((l, i) => {
        const want = apart[i];
        assert.deepEqual(l.vals, want.vals, `${be.name}: layer ${i} vals`);
        assert.deepEqual(l.bias, want.bias, `${be.name}: layer ${i} bias`);
        assert.deepEqual(l.state, want.state, `${be.name}: layer ${i} optimiser state`);
        assert.ok(l.gvals.every((g) => g === 0) && l.gbias!.every((g) => g === 0), `${be.name}: layer ${i} gradients zeroed`);
      });
      // A NaN loss applies nothing.
      const nanSrc = src.slice();
      nanSrc[indices[c.from] * c.inputs] = NaN;
      const before = fused.map(copyLayer);
      assert.ok(Number.isNaN(be.sparseMlpStep(nanSrc, srcLabels, indices, c.from, c.n, fused, rule)), `${be.name}: NaN loss`);
      fused.forEach((l, i) => {
        assert.deepEqual(l.vals, before[i].vals, `${be.name}: layer ${i} vals after a NaN loss`);
        assert.deepEqual(l.state, before[i].state, `${be.name}: layer ${i} state after a NaN loss`);
      });
    }
  });
}

test('sparseMlpStep with losses runs consecutive steps: the same as one call a step; stops after a NaN loss; checks every batch first', { skip }, () => {
  const c = { ...cases[0], from: 3 };
  const { net, src, srcLabels } = setUp(c, 31);
  const steps = 4, rnd = prng(7);
  const indices = Int32Array.from({ length: c.from + (steps + 1) * c.n }, () => Math.floor(rnd() * c.samples));
  const rule: UpdateRule = { kind: 'adam', lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 5 };
  for (const be of [ref, native!]) {
    const together = withState(layersFor(be, net), rule, 4), apart = together.map(copyLayer);
    const losses = new Float64Array(steps);
    const last = be.sparseMlpStep(src, srcLabels, indices, c.from, c.n, together, rule, losses);
    for (let s = 0; s < steps; s++) {
      const loss = be.sparseMlpStep(src, srcLabels, indices, c.from + s * c.n, c.n, apart, { ...rule, step: rule.step + s });
      assert.equal(losses[s], loss, `${be.name}: step ${s} loss`);
    }
    assert.equal(last, losses[steps - 1], `${be.name}: returns the last loss`);
    together.forEach((l, i) => {
      assert.deepEqual(l.vals, apart[i].vals, `${be.name}: layer ${i} vals`);
      assert.deepEqual(l.state, apart[i].state, `${be.name}: layer ${i} optimiser state`);
    });
    // A NaN sample in the second batch (and not the first): its loss is NaN, no update, no further step.
    const first = new Set(indices.subarray(c.from, c.from + c.n));
    const nanRow = indices.subarray(c.from + c.n, c.from + 2 * c.n).find((r) => !first.has(r))!;
    const nanSrc = src.slice();
    nanSrc[nanRow * c.inputs] = NaN;
    const once = together.map(copyLayer);
    be.sparseMlpStep(nanSrc, srcLabels, indices, c.from, c.n, once, rule);
    const stopped = new Float64Array(steps).fill(-1);
    assert.ok(Number.isNaN(be.sparseMlpStep(nanSrc, srcLabels, indices, c.from, c.n, together, rule, stopped)), `${be.name}: NaN returned`);
    assert.ok(Number.isFinite(stopped[0]) && Number.isNaN(stopped[1]) && stopped[2] === -1 && stopped[3] === -1, `${be.name}: losses ${stopped.join(', ')}`);
    together.forEach((l, i) => assert.deepEqual(l.vals, once[i].vals, `${be.name}: layer ${i} vals after the NaN step`));
    // A bad index in the last batch refuses the whole call before any step.
    const bad = indices.slice();
    bad[c.from + steps * c.n - 1] = c.samples;
    const before = together.map(copyLayer);
    assert.throws(() => be.sparseMlpStep(src, srcLabels, bad, c.from, c.n, together, rule, losses), /indices\[\d+\] = \d+ is outside/, be.name);
    together.forEach((l, i) => assert.deepEqual(l.vals, before[i].vals, `${be.name}: layer ${i} vals after a refused call`));
  }
  // Native and reference agree over the steps (with SGD: Adam's first steps move every
  // weight by about lr whatever its gradient's size, so float summation order shows). The
  // state starts at zero: packed orders differ between backends. The layers are copied:
  // they share net's biases, which the steps above updated.
  const sgd: UpdateRule = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 };
  const fresh = (be: Kernels) => layersFor(be, net).map((l) => ({
    ...copyLayer(l), state: { weight: [new Float32Array(l.pattern.nnz)], bias: [new Float32Array(l.pattern.rows)] },
  }));
  const native4 = fresh(native!), ref4 = fresh(ref);
  const nl = new Float64Array(steps), rl = new Float64Array(steps);
  native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, native4, sgd, nl);
  ref.sparseMlpStep(src, srcLabels, indices, c.from, c.n, ref4, sgd, rl);
  for (let s = 0; s < steps; s++) assert.ok(Math.abs(nl[s] - rl[s]) <= 1e-5 * Math.abs(rl[s]), `step ${s}: native ${nl[s]} vs reference ${rl[s]}`);
});

test('sparseMlpStep refuses an update without the optimiser state', { skip }, () => {
  const c = cases[2];
  const { net, src, srcLabels, indices } = setUp(c, 8);
  const rule: UpdateRule = { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  const layers = withState(layersFor(native!, net), rule, 2);
  const noV = [layers[0], { ...layers[1], state: { weight: [layers[1].state!.weight[0]], bias: layers[1].state!.bias } }];
  assert.throws(() => native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, noV, rule), /layer 1: w1 must be a Float32Array for the update/);
  const shared = [{ ...layers[0], state: { weight: [layers[0].vals, layers[0].state!.weight[1]], bias: layers[0].state!.bias } }, layers[1]];
  assert.throws(() => native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, shared, rule), /must not share memory/);
  assert.throws(() => ref.sparseMlpStep(src, srcLabels, indices, c.from, c.n, layersFor(ref, net), rule), /needs every layer's optimiser state/);
});

for (const c of cases) {
  test(`sparseMlpEval ${c.name}: native = reference = dense masked`, { skip }, () => {
    const { net, src, srcLabels } = setUp(c, c.inputs * 3 + c.samples);
    // The dense network's logits for every sample.
    const classes = net.specs[net.specs.length - 1].rows;
    let act = src;
    for (const [l, s] of net.specs.entries()) {
      const y = new Float32Array(c.samples * s.rows);
      ref.matmul(act, net.weights[l], y, c.samples, s.cols, s.rows, false, true, false);
      ref.biasAct(y, net.biases[l] ?? new Float32Array(s.rows), y, c.samples, s.rows, s.relu);
      act = y;
    }
    const loss = ref.softmaxXent(act, srcLabels, c.samples, classes, null, 0);
    const correct = ref.countCorrect(act, srcLabels, c.samples, classes);
    for (const be of [ref, native!]) {
      const got = be.sparseMlpEval(src, srcLabels, layersFor(be, net));
      assert.ok(Math.abs(got.loss - loss) <= 1e-5 * Math.abs(loss), `${be.name}: loss ${got.loss} vs dense ${loss}`);
      assert.equal(got.correct, correct, `${be.name}: correct`);
    }
  });
}

test('sparseMlpEval: ties go to the first maximum; NaN gives a NaN loss; same on 1 and 2 threads; bad arguments', { skip }, () => {
  // One layer that copies its 3 inputs (identity weights): the logits are the inputs.
  const eye = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const src = Float32Array.from([1, 1, 0, /**/ 0, 2, 2, /**/ 3, 3, 3, /**/ 0, 5, 1]);
  const labels = Int32Array.from([0, 2, 0, 1]);
  for (const be of [ref, native!]) {
    const p = be.sparsePattern(eye, 3, 3);
    const layers = [{ pattern: p, vals: Float32Array.from(p.flat, (i) => eye[i]), bias: null, relu: false, gvals: new Float32Array(p.nnz), gbias: null }];
    assert.equal(be.sparseMlpEval(src, labels, layers).correct, 3, `${be.name}: first maximum wins`);
    const nan = src.slice();
    nan[4] = NaN;
    assert.ok(Number.isNaN(be.sparseMlpEval(nan, labels, layers).loss), `${be.name}: NaN`);
    assert.throws(() => be.sparseMlpEval(src, Int32Array.from([0, 3, 0, 1]), layers), /srcLabels\[1\] = 3 is outside \[0, 3\)/, be.name);
    assert.throws(() => be.sparseMlpEval(src.subarray(1), labels, layers), /not a whole number of samples of 3/, be.name);
  }
  const c = cases[3];
  const { net, src: big, srcLabels } = setUp(c, 77);
  const before = getThreads();
  try {
    setThreads(1);
    const one = native!.sparseMlpEval(big, srcLabels, layersFor(native!, net));
    setThreads(2);
    assert.deepEqual(native!.sparseMlpEval(big, srcLabels, layersFor(native!, net)), one);
  } finally {
    setThreads(before);
  }
});

// ------------------------------------------------------------------ the addon's own calls

/** The addon's fused-MLP calls as it exports them (index.ts adapts them to the Backend). */
interface Addon {
  sparseMlpPrepare(parts: unknown, ...layers: unknown[]): object;
  sparseMlpStep(prepared: object, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    rule: Float64Array | null, losses: Float64Array | null): number;
  sparseMlpEval(prepared: object, src: Float32Array, srcLabels: Int32Array, out: Float64Array): void;
  sparseForward(...args: unknown[]): void;
}
// The module index.ts loaded (require caches it): dist/src/backend/ -> the package root.
const addon = skip ? null : createRequire(import.meta.url)(
  path.resolve(fileURLToPath(import.meta.url), '../../../../build/Release/lth_native.node')) as Addon;

/** A chain's arguments for sparseMlpPrepare after `parts`: ten per layer. */
function prepareArgs(layers: readonly SparseMlpLayer[]): unknown[] {
  const args: unknown[] = [];
  for (const l of layers) {
    const w = l.state?.weight ?? [], b = l.state?.bias ?? [];
    args.push(l.pattern, l.vals, l.bias, l.relu, l.gvals, l.gbias, w[0] ?? null, w[1] ?? null, b[0] ?? null, b[1] ?? null);
  }
  return args;
}
const prepare = (parts: number, layers: readonly SparseMlpLayer[]) => addon!.sparseMlpPrepare(parts, ...prepareArgs(layers));
const adamArgs = (r: Extract<UpdateRule, { kind: 'adam' }>, step = r.step) => Float64Array.from([1, r.lr, r.beta1, r.beta2, r.eps, step, 0, 0]);
const sgdArgs = (r: Extract<UpdateRule, { kind: 'sgd' }>) => Float64Array.from([2, r.lr, 0, 0, 0, 0, r.momentum, r.weightDecay]);

/** A first layer of 7 column blocks (400 inputs at 20%: blocks of 64), so 3 and 4 parts all have work. */
const wide: Case = { name: 'first layer of 7 blocks, batch 70', inputs: 400, specs: [hidden(64, 0.2), hidden(24, 0.4), output(10, 0.5)], n: 70, samples: 200, from: 5 };
/** Four layers, one narrower than the parts. */
const deep: Case = { name: 'four layers', inputs: 400, specs: [hidden(48, 0.2), hidden(30, 0.4), hidden(2, 0.8), output(10, 0.5)], n: 50, samples: 150, from: 3 };
/** Later layers big enough (9,500 nonzeros at batch 60) for phase 2 to share their weight gradients by rows; one narrower than the parts. */
const big: Case = { name: 'later layers shared in phase 2', inputs: 200, specs: [hidden(300, 0.1), hidden(100, 0.3), hidden(2, 0.9), output(10, 0.5)], n: 60, samples: 150, from: 4 };

for (const parts of [1, 3, 4]) {
  test(`sparseMlpPrepare(${parts}, ...): the step = dense masked on every case`, { skip }, () => {
    for (const c of [...cases, wide, deep, big]) {
      const { net, src, srcLabels, indices } = setUp(c, c.inputs * 7 + c.n);
      const x = new Float32Array(c.n * c.inputs), labels = new Int32Array(c.n);
      ref.gatherRows(src, c.inputs, indices, c.from, c.n, x);
      for (let i = 0; i < c.n; i++) labels[i] = srcLabels[indices[c.from + i]];
      const dense = denseStep(net, x, labels, c.n);
      const layers = layersFor(native!, net);
      const loss = addon!.sparseMlpStep(prepare(parts, layers), src, srcLabels, indices, c.from, c.n, null, null);
      assert.ok(Math.abs(loss - dense.loss) <= 1e-5 * Math.abs(dense.loss), `${c.name}: loss ${loss} vs dense ${dense.loss}`);
      denseGrads(layers).forEach((g, l) => {
        const e = relErr(g, dense.gw[l]);
        assert.ok(e <= 1e-5, `${c.name}: layer ${l} weight gradient rel err ${e}`);
        const gb = layers[l].gbias;
        if (gb) assert.ok(relErr(gb, dense.gb[l]) <= 1e-5, `${c.name}: layer ${l} bias gradient rel err ${relErr(gb, dense.gb[l])}`);
      });
    }
  });
}

test('sparseMlpPrepare with 1, 3 and 4 parts: consecutive steps with an update = reference', { skip }, () => {
  const c = wide, steps = 4;
  const { net, src, srcLabels } = setUp(c, 41);
  const rnd = prng(8);
  const indices = Int32Array.from({ length: c.from + (steps + 1) * c.n }, () => Math.floor(rnd() * c.samples));
  // SGD from zero state (see the losses test above: Adam's first steps magnify summation order).
  const sgd: UpdateRule = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
  const fresh = (be: Kernels) => layersFor(be, net).map((l) => ({
    ...copyLayer(l), state: { weight: [new Float32Array(l.pattern.nnz)], bias: [new Float32Array(l.pattern.rows)] },
  }));
  const want = fresh(ref), wantLosses = new Float64Array(steps);
  ref.sparseMlpStep(src, srcLabels, indices, c.from, c.n, want, sgd, wantLosses);
  const wantDense = want.map((l) => { const d = new Float32Array(l.pattern.rows * l.pattern.cols); l.pattern.flat.forEach((f, k) => { d[f] = l.vals[k]; }); return d; });
  for (const parts of [1, 3, 4]) {
    const layers = fresh(native!), losses = new Float64Array(steps);
    addon!.sparseMlpStep(prepare(parts, layers), src, srcLabels, indices, c.from, c.n, sgdArgs(sgd), losses);
    for (let s = 0; s < steps; s++) assert.ok(Math.abs(losses[s] - wantLosses[s]) <= 1e-5 * Math.abs(wantLosses[s]), `parts ${parts}, step ${s}: loss ${losses[s]} vs ${wantLosses[s]}`);
    layers.forEach((l, i) => {
      const d = new Float32Array(l.pattern.rows * l.pattern.cols);
      l.pattern.flat.forEach((f, k) => { d[f] = l.vals[k]; });
      assert.ok(relErr(d, wantDense[i]) <= 1e-5, `parts ${parts}: layer ${i} weights rel err ${relErr(d, wantDense[i])}`);
      assert.ok(relErr(l.bias!, want[i].bias!) <= 1e-5, `parts ${parts}: layer ${i} bias`);
    });
  }
});

for (const c of [wide, deep, big]) test(`sparseMlpPrepare(3, ...): bitwise the same on 1, 2 and 3 threads, also over consecutive steps with Adam (${c.name})`, { skip }, () => {
  const steps = 3;
  const { net, src, srcLabels } = setUp(c, 43);
  const rnd = prng(12);
  const indices = Int32Array.from({ length: c.from + (steps + 1) * c.n }, () => Math.floor(rnd() * c.samples));
  const rule = { kind: 'adam', lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 2 } as const;
  const before = getThreads();
  const run = (threads: number) => {
    setThreads(threads);
    const layers = withState(layersFor(native!, net), rule, 6).map(copyLayer);
    const prepared = prepare(3, layers), losses = new Float64Array(steps);
    const first = addon!.sparseMlpStep(prepared, src, srcLabels, indices, c.from, c.n, adamArgs(rule), null);
    addon!.sparseMlpStep(prepared, src, srcLabels, indices, c.from + c.n, c.n, adamArgs(rule, rule.step + 1), losses);
    return { first, losses, layers };
  };
  try {
    const one = run(1);
    for (const threads of [2, 3]) {
      const other = run(threads);
      assert.equal(other.first, one.first, `${threads} threads: first loss`);
      assert.deepEqual(other.losses, one.losses, `${threads} threads: losses`);
      other.layers.forEach((l, i) => {
        assert.deepEqual(l.vals, one.layers[i].vals, `${threads} threads: layer ${i} vals`);
        assert.deepEqual(l.bias, one.layers[i].bias, `${threads} threads: layer ${i} bias`);
        assert.deepEqual(l.state, one.layers[i].state, `${threads} threads: layer ${i} optimiser state`);
      });
    }
  } finally {
    setThreads(before);
  }
});

test('sparseMlpPrepare refuses a bad parts or layer count', { skip }, () => {
  const { net } = setUp(cases[2], 3);
  const args = prepareArgs(layersFor(native!, net));
  for (const bad of [0, 1.5, -1, 65, NaN, Infinity]) {
    assert.throws(() => addon!.sparseMlpPrepare(bad, ...args),
      (e: Error) => e instanceof RangeError && e.message === `sparseMlpPrepare: parts must be an integer from 1 to 64, got ${String(bad).replace('Infinity', 'inf').replace('NaN', 'nan')}`, `parts ${bad}`);
  }
  assert.throws(() => addon!.sparseMlpPrepare('2', ...args), (e: Error) => e instanceof TypeError && /^sparseMlpPrepare: parts must be a number, got string$/.test(e.message));
  assert.throws(() => addon!.sparseMlpPrepare(2), (e: Error) => e instanceof TypeError && /expected 10 arguments per layer after parts, got 0$/.test(e.message));
  assert.throws(() => addon!.sparseMlpPrepare(2, ...args.slice(1)), /expected 10 arguments per layer after parts, got 19/);
  assert.throws(() => addon!.sparseMlpPrepare(2, args[1], ...args.slice(1)), /pattern must be an object made by this backend's sparsePattern\(\)/);
  assert.ok(typeof addon!.sparseMlpPrepare(1, ...args) === 'object' && typeof addon!.sparseMlpPrepare(64, ...args) === 'object');
});

test('sparseMlpEval(prepared, ...): a prepared chain\'s patterns, values, biases and activations; = the Backend call; bad handles', { skip }, () => {
  for (const c of [cases[0], cases[3], cases[8], wide]) {
    const { net, src, srcLabels, indices } = setUp(c, c.inputs + 5);
    const layers = layersFor(native!, net);
    const prepared = prepare(2, layers), out = new Float64Array(2);
    addon!.sparseMlpEval(prepared, src, srcLabels, out);
    const viaBackend = native!.sparseMlpEval(src, srcLabels, layers);
    assert.deepEqual({ loss: out[0], correct: out[1] }, viaBackend, `${c.name}: the Backend call`);
    const want = ref.sparseMlpEval(src, srcLabels, layersFor(ref, net));
    assert.ok(Math.abs(out[0] - want.loss) <= 1e-5 * Math.abs(want.loss), `${c.name}: loss ${out[0]} vs ${want.loss}`);
    assert.equal(out[1], want.correct, `${c.name}: correct`);
    // After an update through the same handle, evaluation sees the new values.
    const rule = { kind: 'sgd', lr: 0.5, momentum: 0, weightDecay: 0 } as const;
    const stepped = withState(layers, rule, 3);
    const handle = prepare(3, stepped);
    addon!.sparseMlpStep(handle, src, srcLabels, indices, c.from, c.n, sgdArgs(rule), null);
    addon!.sparseMlpEval(handle, src, srcLabels, out);
    const refLayers = layersFor(ref, net).map((l, i) => {
      const w = new Float32Array(l.pattern.rows * l.pattern.cols);
      stepped[i].pattern.flat.forEach((f, k) => { w[f] = stepped[i].vals[k]; });
      return { ...l, vals: Float32Array.from(l.pattern.flat, (f) => w[f]), bias: stepped[i].bias };
    });
    const after = ref.sparseMlpEval(src, srcLabels, refLayers);
    assert.ok(Math.abs(out[0] - after.loss) <= 1e-5 * Math.abs(after.loss), `${c.name}: loss after a step ${out[0]} vs ${after.loss}`);
  }
  const { net, src, srcLabels } = setUp(cases[2], 3);
  const layers = layersFor(native!, net), prepared = prepare(2, layers);
  const notPrepared = /^sparseMlpEval: prepared must be an object made by this backend's sparseMlpPrepare\(\)$/;
  assert.throws(() => addon!.sparseMlpEval(layers[0].pattern, src, srcLabels, new Float64Array(2)), (e: Error) => e instanceof TypeError && notPrepared.test(e.message));
  assert.throws(() => addon!.sparseMlpEval({}, src, srcLabels, new Float64Array(2)), (e: Error) => e instanceof TypeError && notPrepared.test(e.message));
  assert.throws(() => addon!.sparseMlpStep(layers[0].pattern, src, srcLabels, new Int32Array(cases[2].n), 0, cases[2].n, null, null),
    /^TypeError: sparseMlpStep: prepared must be an object made by this backend's sparseMlpPrepare\(\)$/);
  assert.throws(() => addon!.sparseForward(prepared, layers[0].vals, new Float32Array(13 * 64), new Float32Array(4 * 64), null, 4, 16, false),
    /sparseForward: pattern must be an object made by this backend's sparsePattern\(\)/);
  assert.throws(() => addon!.sparseMlpEval(prepared, src, srcLabels, new Float64Array(1)), (e: Error) => e instanceof RangeError && e.message === 'sparseMlpEval: out has 1 elements, needs 2 = 2');
  assert.throws(() => addon!.sparseMlpEval(prepared, src, srcLabels, new Float32Array(2) as unknown as Float64Array), /^TypeError: sparseMlpEval: out must be a Float64Array, got Float32Array$/);
});

test('setSimd switches every kernel in-process: each path matches the reference; a bad name is refused', { skip }, () => {
  const start = nativeAddon!.simdPath();
  const c = cases[0];
  const { net, src, srcLabels, indices } = setUp(c, 17);
  const x = new Float32Array(c.n * c.inputs), labels = new Int32Array(c.n);
  ref.gatherRows(src, c.inputs, indices, c.from, c.n, x);
  for (let i = 0; i < c.n; i++) labels[i] = srcLabels[indices[c.from + i]];
  const dense = denseStep(net, x, labels, c.n);
  const evalWant = ref.sparseMlpEval(src, srcLabels, layersFor(ref, net));
  const rnd = prng(23);
  const a = randomArray(70 * 90, rnd), b = randomArray(90 * 50, rnd), cWant = new Float32Array(70 * 50);
  ref.matmul(a, b, cWant, 70, 90, 50, false, true, false);
  const paths: Record<string, string> = {};
  const best = nativeAddon!.setSimd('avx512');
  try {
    for (const name of ['scalar', 'avx2', 'avx512', 'scalar']) {
      const now = nativeAddon!.setSimd(name as 'avx512' | 'avx2' | 'scalar');
      paths[name] = now;
      assert.equal(nativeAddon!.simdPath(), now, `${name}: simd`);
      const cGot = new Float32Array(70 * 50);
      native!.matmul(a, b, cGot, 70, 90, 50, false, true, false);
      assert.ok(relErr(cGot, cWant) <= 1e-5, `${name}: matmul rel err ${relErr(cGot, cWant)}`);
      const layers = layersFor(native!, net);
      const loss = native!.sparseMlpStep(src, srcLabels, indices, c.from, c.n, layers, null);
      assert.ok(Math.abs(loss - dense.loss) <= 1e-5 * Math.abs(dense.loss), `${name}: loss ${loss} vs dense ${dense.loss}`);
      denseGrads(layers).forEach((g, l) => assert.ok(relErr(g, dense.gw[l]) <= 1e-5, `${name}: layer ${l} weight gradient`));
      const got = native!.sparseMlpEval(src, srcLabels, layersFor(native!, net));
      assert.ok(Math.abs(got.loss - evalWant.loss) <= 1e-5 * Math.abs(evalWant.loss) && got.correct === evalWant.correct, `${name}: evaluation`);
    }
    assert.equal(paths.scalar, 'scalar');
    assert.ok(['avx2', 'scalar'].includes(paths.avx2), `avx2 -> ${paths.avx2}`);
    assert.equal(paths.avx512, best, 'avx512 gives the best path this CPU has');
    assert.throws(() => nativeAddon!.setSimd('sse9' as 'scalar'), (e: Error) => e instanceof RangeError && e.message === "setSimd: name must be 'avx512', 'avx2' or 'scalar', got 'sse9'");
    assert.throws(() => nativeAddon!.setSimd('scalar\0' as 'scalar'), /got 'scalar/);
    assert.throws(() => nativeAddon!.setSimd(3 as unknown as 'scalar'), (e: Error) => e instanceof TypeError && e.message === 'setSimd: name must be a string, got number');
    assert.equal(nativeAddon!.simdPath(), 'scalar', 'a refused name leaves the path');
  } finally {
    nativeAddon!.setSimd(start);
  }
  assert.equal(nativeAddon!.simdPath(), start);
});
