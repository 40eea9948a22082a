import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { GraphProgram } from '../program/graph.js';
import { gradCheck } from './gradcheck.js';
import { linear, softmaxCrossEntropy } from './ops.js';
import { maskPattern, packValues, sparseLinear, sparseLinearPanels, toPanels, fromPanels, unpackValues, useSparse, SMALL_LAYER_WEIGHTS, SPARSE_DENSITY_THRESHOLD } from './sparse.js';
import { Tensor } from './tensor.js';

function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  const t = Tensor.zeros(shape, true);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

/** A weight [out, inF] with a random mask of about `density` (pruned entries zero), and that mask. */
function maskedWeight(out: number, inF: number, density: number, rng: Rng, scale = 0.5): { w: Tensor; mask: Float32Array } {
  const w = randomTensor([out, inF], rng, scale);
  const mask = new Float32Array(w.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.uniform() < density ? 1 : 0;
  for (let i = 0; i < mask.length; i++) if (!mask[i]) w.data[i] = 0;
  return { w, mask };
}

/** The packed weight of a masked dense weight, as a trainable tensor, and its pattern. */
function packed(w: Tensor, mask: Float32Array) {
  const { pattern } = maskPattern(mask, w.shape[0], w.shape[1]);
  return { pattern, vals: new Tensor(packValues(pattern, w.data), [pattern.nnz], true) };
}

test('maskPattern: flat indices and density of a mask with empty rows and columns', () => {
  const m = Float32Array.from([0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]); // 3x4, row 1 empty, col 3 empty
  const ix = maskPattern(m, 3, 4);
  assert.deepEqual([...ix.pattern.flat], [1, 8, 10]);
  assert.equal(ix.density, 3 / 12);
  assert.throws(() => maskPattern(m, 4, 4), /mask has 12 values, expected 4x4/);
  const dense = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  assert.deepEqual([...packValues(ix.pattern, dense)], [2, 9, 11]);
  assert.deepEqual([...unpackValues(ix.pattern, Float32Array.from([-1, -2, -3]), new Float32Array(12))], [0, -1, 0, 0, 0, 0, 0, 0, -2, 0, -3, 0]);
});

test('sparse mode: auto by threshold and small-layer rule, on, off; a bad LTH_SPARSE is an error', () => {
  assert.equal(useSparse(0.99, 'on'), true);
  assert.equal(useSparse(0.001, 'off'), false);
  assert.equal(useSparse(SPARSE_DENSITY_THRESHOLD / 2, 'auto'), true);
  assert.equal(useSparse(Math.min(1, SPARSE_DENSITY_THRESHOLD * 1.5), 'auto'), false);
  assert.equal(useSparse(0.9, 'auto', SMALL_LAYER_WEIGHTS), true, 'a small layer runs sparse at any density');
  assert.equal(useSparse(0.9, 'auto', SMALL_LAYER_WEIGHTS + 1), false);
  assert.equal(useSparse(0.01, 'off', 10), false);
  assert.equal(resolveContext({}, {}).settings.sparse, 'auto');
  assert.equal(resolveContext({}, { LTH_SPARSE: 'off' }).settings.sparse, 'off');
  assert.equal(resolveContext({ sparse: 'on' }, { LTH_SPARSE: 'off' }).settings.sparse, 'on', 'a flag wins over its variable');
  assert.throws(() => resolveContext({}, { LTH_SPARSE: 'yes' }), /LTH_SPARSE must be 'auto', 'on' or 'off', got 'yes'/);
  assert.throws(() => resolveContext({ sparse: 'yes' }, {}), /--sparse must be 'auto', 'on' or 'off', got 'yes'/);
  resolveContext({}, {});
});

for (const [n, inF, out, density] of [[5, 7, 4, 0.5], [1, 9, 3, 0.3], [17, 20, 6, 0.1], [60, 30, 10, 0], [100, 12, 5, 0.4]] as const) {
  test(`sparseLinear = dense masked linear: values and gradients (n=${n}, ${out}x${inF}, density ${density})`, () => {
    const rng = new Rng(n + inF, 'test');
    const x = randomTensor([n, inF], rng), { w, mask } = maskedWeight(out, inF, density, rng), b = randomTensor([out], rng, 0.3);
    const { pattern, vals } = packed(w, mask);
    const labels = Int32Array.from({ length: n }, (_, i) => i % out);
    for (const act of ['none', 'relu'] as const) {
      const run = (sparse: boolean) => {
        for (const t of [x, w, b, vals]) t.grad = null;
        const y = sparse ? sparseLinear(x, vals, pattern, b, act) : linear(x, w, b, act);
        softmaxCrossEntropy(y, labels).backward();
        // The sparse weight gradient is packed; dense computes it everywhere and the optimiser ignores the pruned entries.
        const gw = sparse ? unpackValues(pattern, vals.grad!, new Float32Array(w.size)) : Float32Array.from(w.grad!).map((g, i) => (mask[i] ? g : 0));
        return { y: Float32Array.from(y.data), gx: Float32Array.from(x.grad!), gw, gb: Float32Array.from(b.grad!) };
      };
      const s = run(true), d = run(false);
      for (const k of ['y', 'gx', 'gw', 'gb'] as const) {
        for (let i = 0; i < s[k].length; i++) assert.ok(Math.abs(s[k][i] - d[k][i]) <= 1e-5 * Math.max(1, Math.abs(d[k][i])), `${act} ${k}[${i}]: ${s[k][i]} vs ${d[k][i]}`);
      }
    }
  });
}

test('sparse layers on panels: gradients match finite differences (x, packed W, b; a chain of two layers)', () => {
  const rng = new Rng(3, 'test');
  const x = randomTensor([6, 9], rng);
  const l1 = maskedWeight(8, 9, 0.4, rng, 0.7), b1 = randomTensor([8], rng, 0.3);
  const l2 = maskedWeight(3, 8, 0.6, rng, 0.7), b2 = randomTensor([3], rng, 0.1);
  const p1 = packed(l1.w, l1.mask), p2 = packed(l2.w, l2.mask);
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2]);
  const f = () => softmaxCrossEntropy(fromPanels(sparseLinearPanels(sparseLinearPanels(toPanels(x), p1.vals, p1.pattern, b1, 'relu'), p2.vals, p2.pattern, b2, 'none')), labels);
  const err = gradCheck(f, [x, p1.vals, b1, p2.vals, b2], { eps: 1e-3 });
  assert.ok(err < 2e-2, `max relative error ${err}`);
});

test('sparseLinearPanels: an input with two consumers gets the sum of their gradients', () => {
  const rng = new Rng(5, 'test');
  const x = randomTensor([4, 6], rng);
  const a = maskedWeight(5, 6, 0.5, rng), b = maskedWeight(5, 6, 0.5, rng);
  const pa = packed(a.w, a.mask), pb = packed(b.w, b.mask);
  const labels = Int32Array.from([0, 1, 2, 3]);
  const f = () => {
    const p = toPanels(x);
    const ya = fromPanels(sparseLinearPanels(p, pa.vals, pa.pattern, null, 'none'));
    const yb = fromPanels(sparseLinearPanels(p, pb.vals, pb.pattern, null, 'relu'));
    return softmaxCrossEntropy(addTensors(ya, yb), labels);
  };
  const err = gradCheck(f, [x, pa.vals, pb.vals], { eps: 1e-3 });
  assert.ok(err < 2e-2, `max relative error ${err}`);
});

/** a + b, with both gradients (a test-only op). */
function addTensors(a: Tensor, b: Tensor): Tensor {
  const y = new Tensor(a.data.map((v, i) => v + b.data[i]), a.shape);
  if (a.requiresGrad || b.requiresGrad) {
    y.requiresGrad = true;
    y.parents = [a, b];
    y.backwardFn = () => {
      const ga = a.ensureGrad(), gb = b.ensureGrad();
      for (let i = 0; i < ga.length; i++) { ga[i] += y.grad![i]; gb[i] += y.grad![i]; }
    };
  }
  return y;
}

test('graph program: sparse layers + packed Adam/SGD = dense masked layers (pruned weights stay exactly zero)', () => {
  const data = (() => {
    const r = new Rng(8, 'data');
    const x = new Float32Array(48 * 20).map(() => r.normal());
    return new Dataset(x, Int32Array.from({ length: 48 }, (_, i) => (i * 7) % 4), [20], 4);
  })();
  for (const opt of ['adam', 'sgd'] as const) {
    const runs = (['on', 'off'] as const).map((sparse) => {
      const rng = new Rng(7, 'test');
      const fc1 = new Linear(20, 16, 'relu'), fc2 = new Linear(16, 4, 'none');
      const model = new Model('tiny', [['fc1', fc1], ['fc2', fc2]]);
      const l1 = maskedWeight(16, 20, 0.3, rng), l2 = maskedWeight(4, 16, 0.5, rng);
      fc1.weight.data.set(l1.w.data);
      fc2.weight.data.set(l2.w.data);
      for (const b of [fc1.bias, fc2.bias]) for (let i = 0; i < b.size; i++) b.data[i] = 0.1 * rng.normal();
      const context = resolveContext({ sparse, fused: 'off' }, {});
      const program = new GraphProgram(model, {
        masks: new Map([['fc1.weight', l1.mask], ['fc2.weight', l2.mask]]), context,
        optimizer: opt === 'adam' ? { name: 'adam', lr: 1e-2, momentum: 0, weightDecay: 0 } : { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 },
      });
      const losses = new Float64Array(4);
      const all: number[] = [];
      const order = new Rng(9, 'order').permutation(48);
      for (let r = 0; r < 3; r++) {
        program.step({ data, order, from: 0, batchSize: 12 }, losses);
        all.push(...losses);
      }
      const state = program.state();
      for (const [name, m] of [['fc1.weight', l1.mask], ['fc2.weight', l2.mask]] as const) {
        for (let i = 0; i < m.length; i++) if (!m[i]) assert.ok(Object.is(state.get(name)![i], 0), 'pruned weight stays +0');
      }
      return { losses: all, state };
    });
    resolveContext({}, {});
    const [s, d] = runs;
    for (let i = 0; i < s.losses.length; i++) assert.ok(Math.abs(s.losses[i] - d.losses[i]) < 1e-4, `${opt} loss ${i}: ${s.losses[i]} vs ${d.losses[i]}`);
    for (const [name, v] of s.state) {
      const w = d.state.get(name)!;
      for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i] - w[i]) < 1e-4, `${opt} ${name}[${i}]`);
    }
  }
});
