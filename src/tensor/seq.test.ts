/**
 * Sequence ops: finite-difference gradient checks of every op (views, embeddings, pooling
 * over time, layer norm, the LSTM layer, causal attention), values against direct
 * definitions where they are short, causality, and errors. Runs on getBackend() (native
 * when it loads); the kernels are compared native-vs-reference in
 * src/backend/seq-native.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { gradCheck } from './gradcheck.js';
import { add } from './norm.js';
import { addPositions, causalAttention, embedding, layerNorm, lstm, maxOverTime, meanOverTime, reshape, swapLastAxes } from './seq.js';
import { Tensor, noGrad } from './tensor.js';

function randomTensor(shape: number[], rng: Rng, scale = 1, requiresGrad = true): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

/** Σ y⊙r for a fixed random r: a scalar whose gradient reaches every output entry differently. */
function probe(y: Tensor, seed = 99): Tensor {
  const rng = new Rng(seed, 'probe');
  const r = Float32Array.from({ length: y.size }, () => rng.normal());
  let s = 0;
  for (let i = 0; i < y.size; i++) s += y.data[i] * r[i];
  const out = new Tensor(Float32Array.of(s), []);
  if (y.requiresGrad) {
    out.requiresGrad = true;
    out.parents = [y];
    out.backwardFn = () => {
      const g = y.ensureGrad();
      for (let i = 0; i < y.size; i++) g[i] += out.grad![0] * r[i];
    };
  }
  return out;
}

const TOL = 2e-2;

test('reshape, swapLastAxes, add: values and gradients', () => {
  const rng = new Rng(1, 't');
  const x = randomTensor([2, 3, 4], rng), z = randomTensor([2, 4, 3], rng);
  const y = swapLastAxes(x);
  assert.deepEqual(y.shape, [2, 4, 3]);
  assert.equal(y.data[(1 * 4 + 2) * 3 + 1], x.data[(1 * 3 + 1) * 4 + 2]);
  assert.ok(gradCheck(() => probe(add(reshape(swapLastAxes(x), [8, 3]), reshape(z, [8, 3]))), [x, z]) < TOL);
  assert.throws(() => add(x, z), /add: shapes \[2, 3, 4\] and \[2, 4, 3\] differ/);
  assert.throws(() => reshape(x, [5, 5]), /reshape: \[2, 3, 4\] has 24 values/);
});

test('embedding: picks rows, scatters gradients (repeated ids add), rejects ids outside the vocabulary', () => {
  const rng = new Rng(2, 't');
  const w = randomTensor([5, 3], rng);
  const ids = new Tensor(Float32Array.of(4, 0, 4, 2), [2, 2]);
  const y = embedding(ids, w);
  assert.deepEqual(y.shape, [2, 2, 3]);
  assert.deepEqual([...y.data.subarray(0, 3)], [...w.data.subarray(12, 15)]);
  assert.ok(gradCheck(() => probe(embedding(ids, w)), [w]) < TOL);
  assert.throws(() => embedding(new Tensor(Float32Array.of(5), [1, 1]), w), /input 0 is 5, not a token id in \[0, 5\)/);
  assert.throws(() => embedding(new Tensor(Float32Array.of(0.5), [1, 1]), w), /input 0 is 0.5/);
});

test('addPositions, maxOverTime, meanOverTime: gradients', () => {
  const rng = new Rng(3, 't');
  const x = randomTensor([2, 3, 4], rng), pos = randomTensor([5, 4], rng);
  assert.ok(gradCheck(() => probe(addPositions(x, pos)), [x, pos]) < TOL);
  assert.throws(() => addPositions(randomTensor([1, 6, 4], rng), pos), /6 positions, the embedding has 5/);
  const m = maxOverTime(x);
  assert.equal(m.data[1 * 3 + 2], Math.max(...x.data.subarray((1 * 3 + 2) * 4, (1 * 3 + 3) * 4)));
  assert.ok(gradCheck(() => probe(maxOverTime(x)), [x], { eps: 1e-3 }) < TOL);
  const mean = meanOverTime(x);
  assert.ok(Math.abs(mean.data[5] - (x.data[13] + x.data[17] + x.data[21]) / 3) < 1e-6);
  assert.ok(gradCheck(() => probe(meanOverTime(x)), [x]) < TOL);
});

test('layerNorm: zero mean and unit variance per row before the affine part; gradients of input, weight and bias', () => {
  const rng = new Rng(4, 't');
  const x = randomTensor([3, 2, 6], rng, 2), g = randomTensor([6], rng), b = randomTensor([6], rng);
  const ones = new Tensor(new Float32Array(6).fill(1), [6]), zeros = new Tensor(new Float32Array(6), [6]);
  const y = noGrad(() => layerNorm(x, ones, zeros));
  for (let r = 0; r < 6; r++) {
    const row = [...y.data.subarray(r * 6, r * 6 + 6)];
    const mu = row.reduce((a, v) => a + v, 0) / 6;
    assert.ok(Math.abs(mu) < 1e-5);
    assert.ok(Math.abs(row.reduce((a, v) => a + (v - mu) ** 2, 0) / 6 - 1) < 1e-3);
  }
  assert.ok(gradCheck(() => probe(layerNorm(x, g, b)), [x, g, b], { eps: 1e-3 }) < TOL);
});

test('lstm: gradients of input, weights and biases through every step; a direct float64 step agrees', () => {
  const rng = new Rng(5, 't');
  const [n, T, I, H] = [2, 4, 3, 5];
  const x = randomTensor([n, T, I], rng), wih = randomTensor([4 * H, I], rng, 0.5), whh = randomTensor([4 * H, H], rng, 0.5);
  const bih = randomTensor([4 * H], rng, 0.5), bhh = randomTensor([4 * H], rng, 0.5);
  assert.ok(gradCheck(() => probe(lstm(x, wih, whh, bih, bhh)), [x, wih, whh, bih, bhh], { eps: 1e-2, samples: 30 }) < TOL);
  // The first step from zero state, by the definition.
  const y = noGrad(() => lstm(x, wih, whh, bih, bhh));
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  for (let j = 0; j < H; j++) {
    const pre = (gate: number) => {
      let s = bih.data[gate * H + j] + bhh.data[gate * H + j];
      for (let k = 0; k < I; k++) s += wih.data[(gate * H + j) * I + k] * x.data[k];
      return s;
    };
    const c = sig(pre(0)) * Math.tanh(pre(2));
    assert.ok(Math.abs(y.data[j] - sig(pre(3)) * Math.tanh(c)) < 1e-5);
  }
  assert.throws(() => lstm(x, whh, whh, bih, bhh), /lstm: weights \[20, 5\], \[20, 5\] do not fit input \[2, 4, 3\]/);
});

test('causalAttention: gradients; a position never sees later ones; one position attends to itself alone', () => {
  const rng = new Rng(6, 't');
  const qkv = randomTensor([2, 5, 12], rng);
  assert.ok(gradCheck(() => probe(causalAttention(qkv, 2)), [qkv], { eps: 1e-2, samples: 60 }) < TOL);
  const before = noGrad(() => causalAttention(qkv, 2)).data.slice();
  const changed = new Tensor(qkv.data.slice(), qkv.shape);
  for (let j = 0; j < 12; j++) changed.data[4 * 12 + j] += 1; // sample 0, last position
  const after = noGrad(() => causalAttention(changed, 2)).data;
  for (let i = 0; i < 4 * 4; i++) assert.equal(after[i], before[i], `output ${i} (an earlier position) changed`);
  assert.notEqual(after[4 * 4], before[4 * 4]);
  // Position 0 of each head is its own value vector.
  for (let h = 0; h < 2; h++) for (let j = 0; j < 2; j++) assert.ok(Math.abs(before[h * 2 + j] - qkv.data[8 + h * 2 + j]) < 1e-6);
  assert.throws(() => causalAttention(randomTensor([1, 2, 10], rng), 2), /dim divisible by 2 heads/);
});
