/**
 * The pruning-at-initialisation strategies against masks computed by hand on tiny
 * networks: magnitude_init keeps the largest |θ0| per layer; SNIP keeps the largest
 * |w·∂L/∂w| with the gradient written out for a one-layer softmax; SynFlow's score on a
 * two-layer linear network is |W1|·(column sums of |W2|) and |W2|·(row sums of |W1|); and
 * pruning straight to a target density keeps exactly that many weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { countOnes } from './mask.js';
import { synflowScores } from './scores.js';
import { grasp } from './strategies/grasp.js';
import { magnitudeInit } from './strategies/magnitude-init.js';
import { snip } from './strategies/snip.js';
import { synflow } from './strategies/synflow.js';
import type { PruningContext } from './strategy.js';
import { testContext } from './testing.js';

const rng = new Rng(3, 'tiny');
const normal = (n: number, s = 1) => new Float32Array(n).map(() => s * rng.normal());

/** Indices of the `k` largest values (ties: the earlier first). */
function topK(values: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[b] - values[a] || a - b).slice(0, k).sort((a, b) => a - b);
}
const kept = (m: Float32Array) => [...m.keys()].filter((i) => m[i] !== 0);

test('magnitude_init keeps the largest |θ0| in each layer at its rate', () => {
  const theta0 = new Map([['a', normal(20)], ['b', normal(10)]]);
  const ones = new Map([...theta0].map(([n, w]) => [n, new Float32Array(w.length).fill(1)]));
  const out = magnitudeInit.prune(testContext({ rates: new Map([['a', 0.25], ['b', 0.5]]), trained: null, theta0, mask: ones }));
  assert.deepEqual(kept(out.get('a')!), topK(theta0.get('a')!.map(Math.abs), 15));
  assert.deepEqual(kept(out.get('b')!), topK(theta0.get('b')!.map(Math.abs), 5));
});

test('SNIP keeps the weights of largest |w·∂L/∂w|: a one-layer softmax, its gradient written out', () => {
  const [inF, out, n] = [6, 4, 8];
  const w = normal(out * inF, 0.5), b = new Float32Array(out);
  const x = normal(n * inF), labels = Int32Array.from({ length: n }, (_, i) => i % out);
  // ∂L/∂W = (softmax(x·Wᵀ + b) - onehot)ᵀ · x / n.
  const g = new Float64Array(out * inF);
  for (let s = 0; s < n; s++) {
    const z = Array.from({ length: out }, (_, o) => { let v = b[o]; for (let i = 0; i < inF; i++) v += x[s * inF + i] * w[o * inF + i]; return v; });
    const mx = Math.max(...z), e = z.map((v) => Math.exp(v - mx)), sum = e.reduce((a, c) => a + c, 0);
    for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) g[o * inF + i] += ((e[o] / sum) - (o === labels[s] ? 1 : 0)) * x[s * inF + i] / n;
  }
  const score = Array.from(w, (v, i) => Math.abs(v * g[i]));
  const theta0 = new Map([['fc.weight', w], ['fc.bias', b]]);
  const ctx: PruningContext = {
    ...testContext({ rates: new Map([['fc.weight', 0.5]]), trained: null, theta0, mask: new Map([['fc.weight', new Float32Array(out * inF).fill(1)]]) }),
    model: () => new Model('tiny', [['fc', new Linear(inF, out, 'none')]]),
    sample: (k) => ({ x: x.slice(0, k * inF), labels: labels.slice(0, k), shape: [k, inF] }),
  };
  const mask = snip.prune({ ...ctx, sample: () => ({ x, labels, shape: [n, inF] }) });
  assert.deepEqual(kept(mask.get('fc.weight')!), topK(score, 12));
});

test('SynFlow scores on a two-layer linear network: |W1|·colsum(|W2|) and |W2|·rowsum(|W1|); masked weights score 0', () => {
  const w1 = normal(5 * 3), w2 = normal(2 * 5);
  const model = new Model('linear2', [['fc1', new Linear(3, 5, 'none')], ['fc2', new Linear(5, 2, 'none')]]);
  const theta = new Map([['fc1.weight', w1], ['fc1.bias', new Float32Array(5)], ['fc2.weight', w2], ['fc2.bias', new Float32Array(2)]]);
  const m1 = new Float32Array(15).fill(1), m2 = new Float32Array(10).fill(1);
  m1[4] = 0;
  m2[7] = 0;
  const scores = synflowScores(model, theta, new Map([['fc1.weight', m1], ['fc2.weight', m2]]), [3]);
  const a1 = w1.map((v, i) => (m1[i] ? Math.abs(v) : 0)), a2 = w2.map((v, i) => (m2[i] ? Math.abs(v) : 0));
  for (let j = 0; j < 5; j++) {
    let col = 0, row = 0;
    for (let k = 0; k < 2; k++) col += a2[k * 5 + j];
    for (let i = 0; i < 3; i++) row += a1[j * 3 + i];
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(scores.get('fc1.weight')![j * 3 + i] - a1[j * 3 + i] * col) < 1e-5, `fc1[${j},${i}]`);
    for (let k = 0; k < 2; k++) assert.ok(Math.abs(scores.get('fc2.weight')![k * 5 + j] - a2[k * 5 + j] * row) < 1e-5, `fc2[${k},${j}]`);
  }
  assert.equal(scores.get('fc1.weight')![4], 0);
  assert.equal(scores.get('fc2.weight')![7], 0);
});

test('pruning at initialisation straight to a target density keeps exactly that many weights (SynFlow, 100 rounds; SNIP)', () => {
  const model = () => new Model('mlp', [['fc1', new Linear(20, 16, 'relu')], ['fc2', new Linear(16, 4, 'none')]]);
  const m = model();
  m.initialize(new Rng(1, 'init'));
  const theta0 = m.state();
  const mask = new Map(m.prunableNames().map((n) => [n, new Float32Array(m.parameter(n).size).fill(1)]));
  const r = new Rng(2, 'x');
  const x = new Float32Array(64 * 20).map(() => r.normal()), labels = Int32Array.from({ length: 64 }, (_, i) => i % 4);
  for (const strategy of [synflow, snip]) {
    for (const d of [0.5, 0.1]) {
      const ctx: PruningContext = {
        ...testContext({ rates: new Map([['fc1.weight', 0.2], ['fc2.weight', 0.1]]), trained: null, theta0, mask }),
        targetDensity: d, model, sample: (n) => { const k = Math.min(n, 64); return { x: x.slice(0, k * 20), labels: labels.slice(0, k), shape: [k, 20] }; },
      };
      const out = strategy.prune(ctx);
      const k = [...out.values()].reduce((a, v) => a + countOnes(v), 0);
      assert.equal(k, Math.round(d * (320 + 64)), `${strategy.name} at ${d}`);
      assert.deepEqual(strategy.prune(ctx), out, `${strategy.name}: deterministic`);
    }
  }
});

test('GraSP removes the weights of lowest θ·Hg: a one-layer softmax at temperature 200, Hg written out', () => {
  const [inF, out, n, T] = [8, 5, 16, 200];
  const r = new Rng(11, 'grasp');
  const w = new Float32Array(out * inF).map(() => 2 * r.normal()), b = new Float32Array(out);
  const x = new Float32Array(n * inF).map(() => r.normal()), labels = Int32Array.from({ length: n }, (_, i) => i % out);
  // p_s = softmax(W x_s / T); g = mean (p - y) x^T / T; Hg = mean (diag p - p p^T)(g x_s) x_s^T / T².
  const probs = Array.from({ length: n }, (_, s) => {
    const z = Array.from({ length: out }, (_, o) => { let v = 0; for (let i = 0; i < inF; i++) v += w[o * inF + i] * x[s * inF + i]; return v / T; });
    const mx = Math.max(...z), e = z.map((v) => Math.exp(v - mx)), sum = e.reduce((a, c) => a + c, 0);
    return e.map((v) => v / sum);
  });
  const g = new Float64Array(out * inF), hg = new Float64Array(out * inF);
  for (let s = 0; s < n; s++) for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) g[o * inF + i] += (probs[s][o] - (o === labels[s] ? 1 : 0)) * x[s * inF + i] / (T * n);
  for (let s = 0; s < n; s++) {
    const p = probs[s];
    const gx = Array.from({ length: out }, (_, o) => { let v = 0; for (let i = 0; i < inF; i++) v += g[o * inF + i] * x[s * inF + i]; return v; });
    const pgx = p.reduce((a, pv, o) => a + pv * gx[o], 0);
    for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) hg[o * inF + i] += p[o] * (gx[o] - pgx) * x[s * inF + i] / (T * T * n);
  }
  const exact = Array.from(w, (v, i) => v * hg[i]);
  const ctx: PruningContext = {
    ...testContext({ rates: new Map([['fc.weight', 0.5]]), trained: null, theta0: new Map([['fc.weight', w], ['fc.bias', b]]), mask: new Map([['fc.weight', new Float32Array(out * inF).fill(1)]]) }),
    model: () => new Model('tiny', [['fc', new Linear(inF, out, 'none')]]),
    sample: () => ({ x, labels, shape: [n, inF] }),
  };
  const m = grasp.prune(ctx).get('fc.weight')!;
  assert.equal(countOnes(m), 20);
  // Every removed weight has a lower θ·Hg than every kept one (to 1% of the scores' range: Hg is a finite difference).
  const range = Math.max(...exact) - Math.min(...exact);
  const removedMax = Math.max(...exact.filter((_, i) => m[i] === 0)), keptMin = Math.min(...exact.filter((_, i) => m[i] !== 0));
  assert.ok(removedMax <= keptMin + 0.01 * range, `removed up to ${removedMax}, kept from ${keptMin} (range ${range})`);
});
