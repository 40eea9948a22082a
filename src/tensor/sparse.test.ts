import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { Adam, Sgd } from '../nn/optim.js';
import { gradCheck } from './gradcheck.js';
import { linear, softmaxCrossEntropy } from './ops.js';
import { SparseWorkspace, denseGrad, maskPattern, maybeSparseLinear, sparseLinear, sparseMode, useSparse, SMALL_LAYER_WEIGHTS, SPARSE_DENSITY_THRESHOLD } from './sparse.js';
import { Tensor, type SparseState } from './tensor.js';

function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  const t = Tensor.zeros(shape, true);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

function maskedWeight(out: number, inF: number, density: number, rng: Rng, scale = 0.5): Tensor {
  const w = randomTensor([out, inF], rng, scale);
  const m = new Float32Array(w.size);
  for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < density ? 1 : 0;
  w.mask = m;
  for (let i = 0; i < m.length; i++) if (!m[i]) w.data[i] = 0;
  return w;
}

function withEnv<T>(v: string | undefined, f: () => T): T {
  const before = process.env.LTH_SPARSE;
  if (v === undefined) delete process.env.LTH_SPARSE;
  else process.env.LTH_SPARSE = v;
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env.LTH_SPARSE;
    else process.env.LTH_SPARSE = before;
  }
}

/** Computes a masked weight sparsely from now on (a fresh state: zero packed gradient). */
function sparsify(w: Tensor): SparseState {
  w.setSparse(null);
  return w.setSparse(maskPattern(w.mask!, w.shape[0], w.shape[1]).pattern)!;
}

test('maskPattern: CSR flat indices and density of a mask with empty rows and columns; cached per mask object', () => {
  const m = Float32Array.from([0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]); // 3x4, row 1 empty, col 3 empty
  const ix = maskPattern(m, 3, 4);
  assert.deepEqual([...ix.pattern.flat], [1, 8, 10]);
  assert.equal(ix.density, 3 / 12);
  assert.equal(maskPattern(m, 3, 4).pattern, ix.pattern);
  assert.notEqual(maskPattern(Float32Array.from(m), 3, 4).pattern, ix.pattern, 'a new mask object rebuilds');
  assert.throws(() => maskPattern(m, 4, 4), /mask has 12 values, expected 4x4/);
});

test('LTH_SPARSE: auto by threshold, on, off; anything else is an error', () => {
  assert.equal(withEnv(undefined, sparseMode), 'auto');
  assert.equal(withEnv('on', () => useSparse(0.99)), true);
  assert.equal(withEnv('off', () => useSparse(0.001)), false);
  assert.equal(withEnv('auto', () => useSparse(SPARSE_DENSITY_THRESHOLD / 2)), true);
  assert.equal(withEnv('auto', () => useSparse(Math.min(1, SPARSE_DENSITY_THRESHOLD * 1.5))), false);
  assert.equal(withEnv('auto', () => useSparse(0.9, undefined, SMALL_LAYER_WEIGHTS)), true, 'a small layer runs sparse at any density');
  assert.equal(withEnv('auto', () => useSparse(0.9, undefined, SMALL_LAYER_WEIGHTS + 1)), false);
  assert.equal(withEnv('off', () => useSparse(0.01, undefined, 10)), false);
  assert.throws(() => withEnv('yes', sparseMode), /LTH_SPARSE must be/);
});

for (const [n, inF, out, density] of [[5, 7, 4, 0.5], [1, 9, 3, 0.3], [17, 20, 6, 0.1], [60, 30, 10, 0]] as const) {
  test(`sparseLinear = dense masked linear: values and gradients (n=${n}, ${out}x${inF}, density ${density})`, () => {
    const rng = new Rng(n + inF, 'test');
    const x = randomTensor([n, inF], rng), w = maskedWeight(out, inF, density, rng), b = randomTensor([out], rng, 0.3);
    const labels = Int32Array.from({ length: n }, (_, i) => i % out);
    for (const act of ['none', 'relu'] as const) {
      const run = (sparse: boolean) => {
        for (const t of [x, w, b]) t.grad = null;
        const y = sparse ? sparseLinear(x, w, b, act, sparsify(w)) : (w.setSparse(null), linear(x, w, b, act));
        softmaxCrossEntropy(y, labels).backward();
        const gw = Float32Array.from(denseGrad(w)!);
        for (let i = 0; i < gw.length; i++) if (!w.mask![i]) gw[i] = 0; // dense computes them; the optimiser ignores them
        return { y: Float32Array.from(y.data), gx: Float32Array.from(x.grad!), gw, gb: Float32Array.from(b.grad!) };
      };
      const s = run(true), d = run(false);
      for (const k of ['y', 'gx', 'gw', 'gb'] as const) {
        for (let i = 0; i < s[k].length; i++) assert.ok(Math.abs(s[k][i] - d[k][i]) <= 1e-5 * Math.max(1, Math.abs(d[k][i])), `${act} ${k}[${i}]: ${s[k][i]} vs ${d[k][i]}`);
      }
    }
  });
}

test('sparseLinear: gradient matches finite differences (x, W at the nonzeros, b; two layers)', () => {
  const rng = new Rng(3, 'test');
  const x = randomTensor([6, 9], rng), w1 = maskedWeight(8, 9, 0.4, rng, 0.7), b1 = randomTensor([8], rng, 0.3);
  const w2 = maskedWeight(3, 8, 0.6, rng, 0.7), b2 = randomTensor([3], rng, 0.1);
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2]);
  const ws1 = new SparseWorkspace(), ws2 = new SparseWorkspace();
  const s1 = sparsify(w1), s2 = sparsify(w2);
  const f = () => softmaxCrossEntropy(sparseLinear(sparseLinear(x, w1, b1, 'relu', s1, ws1), w2, b2, 'none', s2, ws2), labels);
  const err = gradCheck(f, [x, w1, b1, w2, b2], { eps: 1e-3 });
  assert.ok(err < 2e-2, `max relative error ${err}`);
});

test('training steps: sparse path + sparse Adam/SGD = dense masked path (pruned weights stay exactly zero)', () => {
  for (const opt of ['adam', 'sgd'] as const) {
    const runs = ['on', 'off'].map((mode) => withEnv(mode, () => {
      const rng = new Rng(7, 'test');
      const w1 = maskedWeight(16, 20, 0.3, rng), b1 = randomTensor([16], rng, 0.1);
      const w2 = maskedWeight(4, 16, 0.5, rng), b2 = randomTensor([4], rng, 0.1);
      const ws1 = new SparseWorkspace(), ws2 = new SparseWorkspace();
      const params = [w1, b1, w2, b2];
      const o = opt === 'adam' ? new Adam(params, 1e-2) : new Sgd(params, 0.05, 0.9, 1e-4);
      const data = new Rng(8, 'data');
      const losses: number[] = [];
      for (let step = 0; step < 10; step++) {
        const x = Tensor.zeros([12, 20]);
        for (let i = 0; i < x.size; i++) x.data[i] = data.normal();
        const labels = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + step) % 4);
        const fc = (xx: Tensor, w: Tensor, b: Tensor, act: 'none' | 'relu', ws: SparseWorkspace) =>
          maybeSparseLinear(xx, w, b, act, ws) ?? linear(xx, w, b, act);
        const loss = softmaxCrossEntropy(fc(fc(x, w1, b1, 'relu', ws1), w2, b2, 'none', ws2), labels);
        losses.push(loss.data[0]);
        loss.backward();
        o.step();
      }
      for (const w of [w1, w2]) for (let i = 0; i < w.size; i++) if (!w.mask![i]) assert.ok(Object.is(w.data[i], 0), 'pruned weight stays +0');
      assert.equal(w1.sparse !== null, mode === 'on');
      return { losses, w1: Float32Array.from(w1.data), w2: Float32Array.from(w2.data) };
    }));
    const [s, d] = runs;
    for (let i = 0; i < s.losses.length; i++) assert.ok(Math.abs(s.losses[i] - d.losses[i]) < 1e-4, `${opt} loss ${i}: ${s.losses[i]} vs ${d.losses[i]}`);
    for (const k of ['w1', 'w2'] as const) {
      for (let i = 0; i < s[k].length; i++) assert.ok(Math.abs(s[k][i] - d[k][i]) < 1e-4, `${opt} ${k}[${i}]`);
    }
  }
});
