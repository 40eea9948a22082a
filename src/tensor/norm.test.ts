/**
 * Batch norm, the residual addition and global average pooling: values against direct
 * float64 definitions (PyTorch's BatchNorm2d: biased variance to normalise, unbiased in the
 * running variance), finite-difference gradient checks of each op in training and
 * evaluation mode, with and without the fused ReLU, and shape errors. Runs on
 * getBackend(); the kernels themselves are compared native-vs-reference in
 * src/backend/norm-native.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LthError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { flatten } from './conv.js';
import { gradCheck } from './gradcheck.js';
import { add, batchNorm2d, globalAvgPool2d } from './norm.js';
import { linear, softmaxCrossEntropy } from './ops.js';
import { Tensor, noGrad } from './tensor.js';

function randomTensor(shape: number[], rng: Rng, scale = 1, requiresGrad = true, offset = 0): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = offset + scale * rng.normal();
  return t;
}

/** A scalar loss of a tensor: flatten, a fixed random linear map to 3 classes, cross-entropy. */
function headLoss(y: Tensor, head: Tensor, labels: Int32Array): Tensor {
  return softmaxCrossEntropy(linear(y.shape.length > 2 ? flatten(y) : y, head, null), labels);
}

function setup(shape: [number, number, number, number], seed: number) {
  const rng = new Rng(seed, 'test');
  const [n, c, h, w] = shape;
  const x = randomTensor(shape, rng, 1.5, true, 0.3);
  const gamma = randomTensor([c], rng, 0.3, true, 1), beta = randomTensor([c], rng, 0.3);
  const rm = randomTensor([c], rng, 0.2, false), rv = randomTensor([c], rng, 0.1, false, 1.2);
  const head = randomTensor([3, c * h * w], rng, 0.5, false);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  return { x, gamma, beta, rm, rv, head, labels };
}

test('batchNorm2d equals the definition in training mode and updates the running statistics as PyTorch', () => {
  const shape: [number, number, number, number] = [3, 4, 2, 5];
  const { x, gamma, beta, rm, rv } = setup(shape, 1);
  const [n, c, h, w] = shape, size = h * w, m = n * size;
  const rm0 = Float64Array.from(rm.data), rv0 = Float64Array.from(rv.data);
  for (const relu of [false, true]) {
    rm.data.set(rm0);
    rv.data.set(rv0);
    const y = noGrad(() => batchNorm2d(x, gamma, beta, rm, rv, { training: true, momentum: 0.1, eps: 1e-5, activation: relu ? 'relu' : 'none' }));
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < size; k++) s += x.data[(i * c + j) * size + k];
      const mean = s / m;
      let ss = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < size; k++) ss += (x.data[(i * c + j) * size + k] - mean) ** 2;
      const biased = ss / m, unbiased = ss / (m - 1);
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < size; k++) {
          const at = (i * c + j) * size + k;
          const v = gamma.data[j] * (x.data[at] - mean) / Math.sqrt(biased + 1e-5) + beta.data[j];
          const want = relu ? Math.max(0, v) : v;
          assert.ok(Math.abs(y.data[at] - want) <= 1e-5 * (1 + Math.abs(want)), `y[${at}] ${y.data[at]} vs ${want}`);
        }
      }
      assert.ok(Math.abs(rm.data[j] - (0.9 * rm0[j] + 0.1 * mean)) <= 1e-6, `running_mean[${j}]`);
      assert.ok(Math.abs(rv.data[j] - (0.9 * rv0[j] + 0.1 * unbiased)) <= 1e-6, `running_var[${j}] is updated with the unbiased variance`);
    }
  }
});

test('batchNorm2d in evaluation mode normalises with the running statistics and leaves them alone', () => {
  const { x, gamma, beta, rm, rv } = setup([2, 3, 3, 3], 2);
  const before = [Float32Array.from(rm.data), Float32Array.from(rv.data)];
  const y = noGrad(() => batchNorm2d(x, gamma, beta, rm, rv, { training: false, momentum: 0.1, eps: 1e-5 }));
  for (let i = 0; i < x.size; i++) {
    const j = Math.floor(i / 9) % 3;
    const want = gamma.data[j] * (x.data[i] - rm.data[j]) / Math.sqrt(rv.data[j] + 1e-5) + beta.data[j];
    assert.ok(Math.abs(y.data[i] - want) <= 1e-5 * (1 + Math.abs(want)), `y[${i}]`);
  }
  assert.deepEqual([rm.data, rv.data], before);
});

test('batchNorm2d: gradients of x, γ and β match finite differences (training and evaluation)', () => {
  for (const training of [true, false]) {
    for (const shape of [[2, 3, 3, 4], [4, 2, 1, 1], [1, 2, 3, 2]] as Array<[number, number, number, number]>) {
      const { x, gamma, beta, rm, rv, head, labels } = setup(shape, 3);
      const f = () => headLoss(batchNorm2d(x, gamma, beta, rm, rv, { training, momentum: 0.1, eps: 1e-5 }), head, labels);
      const err = gradCheck(f, [x, gamma, beta], { eps: 1e-2, samples: 40 });
      assert.ok(err < 1e-2, `training=${training} [${shape}]: max relative error ${err}`);
    }
  }
});

test('batchNorm2d with fused ReLU: gradients match finite differences away from the kink', () => {
  for (const training of [true, false]) {
    const { x, gamma, beta, rm, rv, head, labels } = setup([2, 3, 3, 3], 4);
    const opts = { training, momentum: 0.1, eps: 1e-5 };
    // A finite-difference step well inside the smallest |pre-activation|, so that ±eps never crosses the kink.
    const pre = noGrad(() => batchNorm2d(x, gamma, beta, rm, rv, opts));
    let margin = Infinity;
    for (const v of pre.data) margin = Math.min(margin, Math.abs(v));
    const f = () => headLoss(batchNorm2d(x, gamma, beta, rm, rv, { ...opts, activation: 'relu' }), head, labels);
    const eps = Math.min(1e-2, margin / 20);
    const err = gradCheck(f, [x, gamma, beta], { eps, samples: 40 });
    assert.ok(err < 2e-2, `training=${training}: max relative error ${err} (margin ${margin}, eps ${eps})`);
  }
});

test('batchNorm2d with a residual: bitwise batchNorm2d then add, gradients match finite differences and the unfused pair', () => {
  for (const training of [true, false]) {
    for (const relu of [false, true]) {
      const { x, gamma, beta, rm, rv, head, labels } = setup([2, 3, 3, 3], 7);
      const r = randomTensor([2, 3, 3, 3], new Rng(8, 'test'), 1.2);
      const opts = { training, momentum: 0.1, eps: 1e-5 };
      const activation = relu ? 'relu' as const : 'none' as const;
      const fused = () => batchNorm2d(x, gamma, beta, rm, rv, { ...opts, activation, residual: r });
      const apart = () => add(batchNorm2d(x, gamma, beta, rm, rv, opts), r, activation);
      const what = `training=${training} relu=${relu}`;
      assert.deepEqual(noGrad(fused).data, noGrad(apart).data, `${what}: values`);
      const grads = (f: () => Tensor) => {
        for (const t of [x, gamma, beta, r]) t.grad = null;
        headLoss(f(), head, labels).backward();
        return [x, gamma, beta, r].map((t) => (t.grad ? Float32Array.from(t.grad) : null));
      };
      const gf = grads(fused), ga = grads(apart);
      for (let i = 0; i < 4; i++) assert.deepEqual(gf[i], ga[i], `${what}: gradient ${['x', 'γ', 'β', 'residual'][i]} as the unfused pair's`);
      const pre = noGrad(() => batchNorm2d(x, gamma, beta, rm, rv, { ...opts, residual: r }));
      let margin = Infinity;
      for (const v of pre.data) margin = Math.min(margin, Math.abs(v));
      const err = gradCheck(() => headLoss(fused(), head, labels), [x, gamma, beta, r], { eps: relu ? Math.min(1e-2, margin / 20) : 1e-2, samples: 40 });
      assert.ok(err < 2e-2, `${what}: max relative error ${err}`);
      // The residual may be the input itself: both shares reach its gradient.
      const self = () => batchNorm2d(x, gamma, beta, rm, rv, { ...opts, activation, residual: x });
      const selfApart = () => add(batchNorm2d(x, gamma, beta, rm, rv, opts), x, activation);
      const gs = grads(self), gsa = grads(selfApart);
      for (let i = 0; i < 3; i++) assert.deepEqual(gs[i], gsa[i], `${what}: residual = x, gradient ${i}`);
    }
  }
  const { x, gamma, beta, rm, rv } = setup([2, 3, 3, 3], 9);
  assert.throws(() => batchNorm2d(x, gamma, beta, rm, rv, { training: true, momentum: 0.1, eps: 1e-5, residual: Tensor.zeros([2, 3, 3, 2]) }),
    (e: unknown) => e instanceof LthError && /the residual's shape \[2, 3, 3, 2\] differs from the input's \[2, 3, 3, 3\]/.test(e.message));
});

test('batchNorm2d refuses one value per channel in training mode, and mismatched shapes', () => {
  const rng = new Rng(5, 'test');
  const x = randomTensor([1, 2, 1, 1], rng);
  const p = () => Tensor.zeros([2], true);
  assert.throws(() => batchNorm2d(x, p(), p(), Tensor.zeros([2]), Tensor.zeros([2]), { training: true, momentum: 0.1, eps: 1e-5 }),
    (e: unknown) => e instanceof LthError && /more than one value per channel/.test(e.message));
  noGrad(() => batchNorm2d(x, p(), p(), Tensor.zeros([2]), Tensor.zeros([2]), { training: false, momentum: 0.1, eps: 1e-5 }));
  assert.throws(() => batchNorm2d(x, Tensor.zeros([3], true), p(), Tensor.zeros([2]), Tensor.zeros([2]), { training: false, momentum: 0.1, eps: 1e-5 }),
    (e: unknown) => e instanceof LthError && /weight has 3 values, the input has 2 channels/.test(e.message));
  assert.throws(() => batchNorm2d(randomTensor([2, 2], rng), p(), p(), Tensor.zeros([2]), Tensor.zeros([2]), { training: false, momentum: 0.1, eps: 1e-5 }),
    (e: unknown) => e instanceof LthError && /must be rank 4/.test(e.message));
});

test('add: values, and gradients of both inputs match finite differences (with ReLU away from the kink, and a + a)', () => {
  const rng = new Rng(6, 'test');
  const a = randomTensor([2, 3, 2, 2], rng), b = randomTensor([2, 3, 2, 2], rng);
  const y = noGrad(() => add(a, b, 'relu'));
  for (let i = 0; i < y.size; i++) assert.equal(y.data[i], Math.max(0, Math.fround(a.data[i] + b.data[i])));
  const head = randomTensor([3, 12], rng, 0.5, false), labels = Int32Array.of(0, 2);
  assert.ok(gradCheck(() => headLoss(add(a, b), head, labels), [a, b], { samples: 24 }) < 1e-2);
  let margin = Infinity;
  for (let i = 0; i < a.size; i++) margin = Math.min(margin, Math.abs(a.data[i] + b.data[i]));
  assert.ok(gradCheck(() => headLoss(add(a, b, 'relu'), head, labels), [a, b], { eps: Math.min(1e-2, margin / 4), samples: 24 }) < 1e-2);
  assert.ok(gradCheck(() => headLoss(add(a, a), head, labels), [a], { samples: 24 }) < 1e-2);
  assert.throws(() => add(a, randomTensor([2, 3, 4], rng)), (e: unknown) => e instanceof LthError && /shapes \[2, 3, 2, 2\] and \[2, 3, 4\] differ/.test(e.message));
});

test('globalAvgPool2d: the mean of each plane, and its gradient matches finite differences', () => {
  const rng = new Rng(7, 'test');
  const x = randomTensor([2, 3, 4, 5], rng);
  const y = noGrad(() => globalAvgPool2d(x));
  assert.deepEqual(y.shape, [2, 3]);
  for (let p = 0; p < 6; p++) {
    let s = 0;
    for (let k = 0; k < 20; k++) s += x.data[p * 20 + k];
    assert.ok(Math.abs(y.data[p] - s / 20) < 1e-6);
  }
  const head = randomTensor([3, 3], rng, 0.5, false), labels = Int32Array.of(1, 2);
  assert.ok(gradCheck(() => headLoss(globalAvgPool2d(x), head, labels), [x], { samples: 40 }) < 1e-2);
  assert.throws(() => globalAvgPool2d(randomTensor([2, 3], rng)), (e: unknown) => e instanceof LthError && /must be rank 4/.test(e.message));
});
