/**
 * Convolutional ops: values against direct loops, finite-difference gradient checks of
 * every op (conv2d in several geometries, max pooling, flatten, dropout), dropout's
 * seeding, and shape errors (the stride-1 3x3 cases with 8+ channels run on conv3x3). Runs on getBackend() (native when it loads); the kernels
 * themselves are compared native-vs-reference in src/backend/conv-native.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { getBackend } from '../backend/index.js';
import { Workspace, conv2d, conv2dMaxPool, convOutputSize, dropout, dropoutMask, flatten, maxPool2d, poolTile, poolsInOne, usesWinograd, type Conv2dGeometry } from './conv.js';
import { normErr } from '../nn/testing.js';
import { gradCheck } from './gradcheck.js';
import { add } from './norm.js';
import { linear, softmaxCrossEntropy } from './ops.js';
import { reshape } from './seq.js';
import { Tensor, noGrad } from './tensor.js';

function randomTensor(shape: number[], rng: Rng, scale = 1, requiresGrad = true): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

const geom = (s: number | [number, number], p: number | [number, number]): Conv2dGeometry => {
  const [strideH, strideW] = typeof s === 'number' ? [s, s] : s;
  const [padH, padW] = typeof p === 'number' ? [p, p] : p;
  return { strideH, strideW, padH, padW };
};

/** Direct 7-loop convolution in float64: the definition. */
function directConv(x: Tensor, w: Tensor, b: Tensor | null, g: Conv2dGeometry, relu: boolean): Float64Array {
  const [n, c, h, wd] = x.shape, [o, , kh, kw] = w.shape;
  const oh = convOutputSize(h, kh, g.strideH, g.padH), ow = convOutputSize(wd, kw, g.strideW, g.padW);
  const y = new Float64Array(n * o * oh * ow);
  for (let i = 0; i < n; i++) for (let f = 0; f < o; f++) for (let yy = 0; yy < oh; yy++) for (let xx = 0; xx < ow; xx++) {
    let s = b ? b.data[f] : 0;
    for (let ch = 0; ch < c; ch++) for (let a = 0; a < kh; a++) for (let bb = 0; bb < kw; bb++) {
      const iy = yy * g.strideH - g.padH + a, ix = xx * g.strideW - g.padW + bb;
      if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
      s += x.data[((i * c + ch) * h + iy) * wd + ix] * w.data[((f * c + ch) * kh + a) * kw + bb];
    }
    y[((i * o + f) * oh + yy) * ow + xx] = relu ? Math.max(0, s) : s;
  }
  return y;
}

const CASES: Array<{ x: number[]; w: number[]; g: Conv2dGeometry; name: string }> = [
  { name: '3x3 same', x: [2, 3, 5, 6], w: [4, 3, 3, 3], g: geom(1, 1) },
  { name: '3x3 valid', x: [2, 2, 6, 5], w: [3, 2, 3, 3], g: geom(1, 0) },
  { name: '3x3 stride 2 pad 1', x: [2, 3, 7, 6], w: [2, 3, 3, 3], g: geom(2, 1) },
  { name: '2x3 stride (2,1) pad (1,0)', x: [1, 2, 5, 7], w: [3, 2, 2, 3], g: geom([2, 1], [1, 0]) },
  { name: '1x1', x: [3, 4, 3, 3], w: [5, 4, 1, 1], g: geom(1, 0) },
  { name: '5x5 on 4x4 pad 2 stride 3', x: [2, 1, 4, 4], w: [2, 1, 5, 5], g: geom(3, 2) },
  // Stride-1 3x3 with at least WINOGRAD_MIN_CHANNELS channels: conv3x3 forward and input gradient.
  { name: 'conv3x3 same, odd sizes', x: [2, 8, 5, 7], w: [9, 8, 3, 3], g: geom(1, 1) },
  { name: 'conv3x3 valid', x: [3, 8, 6, 5], w: [8, 8, 3, 3], g: geom(1, 0) },
  { name: 'conv3x3 pad 2', x: [1, 10, 3, 4], w: [8, 10, 3, 3], g: geom(1, 2) },
  // An input of 8x8 or more: the input gradient runs on F(4x4, 3x3) (winogradTile).
  { name: 'conv3x3 same, 16x17', x: [1, 8, 16, 17], w: [8, 8, 3, 3], g: geom(1, 1) },
  { name: 'conv3x3 same, 8x8 (whole F(4x4) tiles)', x: [2, 8, 8, 8], w: [9, 8, 3, 3], g: geom(1, 1) },
];

test('conv2d equals the direct definition (every geometry, bias, ReLU)', () => {
  const rng = new Rng(10, 'test');
  for (const c of CASES) {
    const x = randomTensor(c.x, rng), w = randomTensor(c.w, rng, 0.5), b = randomTensor([c.w[0]], rng, 0.3);
    for (const relu of [false, true]) {
      for (const bias of [b, null]) {
        const y = noGrad(() => conv2d(x, w, bias, c.g, relu ? 'relu' : 'none'));
        const want = directConv(x, w, bias, c.g, relu);
        assert.equal(y.size, want.length, c.name);
        assert.deepEqual(y.shape, [c.x[0], c.w[0], convOutputSize(c.x[2], c.w[2], c.g.strideH, c.g.padH), convOutputSize(c.x[3], c.w[3], c.g.strideW, c.g.padW)]);
        for (let i = 0; i < want.length; i++) assert.ok(Math.abs(y.data[i] - want[i]) < 1e-5 * (1 + Math.abs(want[i])), `${c.name} y[${i}] ${y.data[i]} vs ${want[i]}`);
      }
    }
  }
});

/** A scalar loss of a 4-D tensor: flatten, a fixed random linear map to 3 classes, cross-entropy. */
function headLoss(y: Tensor, head: Tensor, labels: Int32Array): Tensor {
  return softmaxCrossEntropy(linear(flatten(y), head, null), labels);
}

test('flatten and reshape hand their output\'s gradient on: no copy to an op\'s output, its writer overwrites it, an input read twice gets both shares, a leaf its own copy', () => {
  const rng = new Rng(41, 'test');
  const x = randomTensor([2, 3, 2, 2], rng), shift = randomTensor([2, 3, 2, 2], rng, 1, false);
  const head1 = randomTensor([3, 12], rng, 0.5, false), head2 = randomTensor([3, 12], rng, 0.5, false), labels = Int32Array.of(0, 2);
  // m (an op's output) read by flatten and by reshape, then x itself by flatten: each share reaches x.
  const loss = () => {
    const m = add(x, shift);
    return add(add(headLoss(m, head1, labels), softmaxCrossEntropy(linear(reshape(m, [2, 12]), head2, null), labels)), headLoss(x, head2, labels));
  };
  assert.ok(gradCheck(loss, [x], { eps: 1e-2, samples: 24 }) < 1e-2, 'x\'s gradient against finite differences');

  const be = getBackend() as unknown as { matmul: (...a: unknown[]) => void };
  const matmul = be.matmul, writes: Array<[unknown, unknown]> = [];
  be.matmul = (...a: unknown[]) => { writes.push([a[2], a[8]]); matmul(...a); };
  try {
    x.grad = null;
    const m = add(x, shift), flat = flatten(m), direct = flatten(x);
    add(softmaxCrossEntropy(linear(flat, head1, null), labels), softmaxCrossEntropy(linear(direct, head2, null), labels)).backward();
    assert.equal(m.grad, flat.grad, 'the op\'s output takes the gradient buffer itself');
    assert.deepEqual(writes.filter(([out]) => out === flat.grad).map(([, accumulate]) => accumulate), [false], 'the linear layer\'s input gradient overwrites it');
    assert.notEqual(x.grad, direct.grad, 'a leaf keeps a gradient of its own');
  } finally {
    be.matmul = matmul;
  }
});

test('conv2d: gradients of x, W and b match finite differences in every geometry', () => {
  const rng = new Rng(11, 'test');
  for (const c of CASES) {
    const x = randomTensor(c.x, rng), w = randomTensor(c.w, rng, 0.5), b = randomTensor([c.w[0]], rng, 0.3);
    const y0 = noGrad(() => conv2d(x, w, b, c.g));
    const head = randomTensor([3, y0.size / c.x[0]], rng, 0.5, false);
    const labels = Int32Array.from({ length: c.x[0] }, (_, i) => i % 3);
    const err = gradCheck(() => headLoss(conv2d(x, w, b, c.g), head, labels), [x, w, b], { eps: 1e-2, samples: 40 });
    assert.ok(err < 1e-2, `${c.name}: max relative error ${err}`);
  }
});

test('conv2d with fused ReLU and no bias: gradients match finite differences away from the kink', () => {
  const rng = new Rng(12, 'test');
  const g = geom(1, 1);
  const x = randomTensor([2, 3, 5, 5], rng), w = randomTensor([4, 3, 3, 3], rng, 0.5), b = randomTensor([4], rng, 0.3);
  // Keep every pre-activation well away from 0 so that ±eps never crosses the kink.
  const pre = noGrad(() => conv2d(x, w, b, g));
  for (let f = 0; f < 4; f++) {
    let minAbs = Infinity;
    for (let i = 0; i < 2; i++) for (let k = 0; k < 25; k++) minAbs = Math.min(minAbs, Math.abs(pre.data[(i * 4 + f) * 25 + k]));
    assert.ok(minAbs > 0);
  }
  const head = randomTensor([3, 4 * 25], rng, 0.5, false);
  const labels = Int32Array.of(0, 2);
  const f = () => headLoss(conv2d(x, w, b, g, 'relu'), head, labels);
  const err = gradCheck(f, [x, w, b], { eps: 1e-3, samples: 40 });
  assert.ok(err < 3e-2, `relu: max relative error ${err}`);
  const errNoBias = gradCheck(() => headLoss(conv2d(x, w, null, g, 'relu'), head, labels), [x, w], { eps: 1e-3, samples: 40 });
  assert.ok(errNoBias < 3e-2, `relu without bias: max relative error ${errNoBias}`);
});

test('conv2d on conv3x3 with its bias and ReLU fused: gradients match finite differences away from the kink', () => {
  const rng = new Rng(14, 'test');
  const g = geom(1, 1);
  const x = randomTensor([2, 8, 5, 6], rng), w = randomTensor([8, 8, 3, 3], rng, 0.5), b = randomTensor([8], rng, 0.3);
  assert.ok(usesWinograd(8, 8, 3, 3, g));
  // ±eps (1e-3) on one entry of x, w or b moves a pre-activation by at most 3e-3 (|x|, |w| < 3): keep every one farther from 0.
  const pre = noGrad(() => conv2d(x, w, b, g));
  const minAbs = pre.data.reduce((m, v) => Math.min(m, Math.abs(v)), Infinity);
  assert.ok(minAbs > 5e-3 && [x, w].every((t) => t.data.every((v) => Math.abs(v) < 3)), `pre-activations too close to the kink (${minAbs})`);
  const head = randomTensor([3, pre.size / 2], rng, 0.5, false);
  const labels = Int32Array.of(0, 2);
  const err = gradCheck(() => headLoss(conv2d(x, w, b, g, 'relu'), head, labels), [x, w, b], { eps: 1e-3, samples: 40 });
  assert.ok(err < 3e-2, `max relative error ${err}`);
});

/** Counts the calls of the backend kernel `name` (which still runs) until restore(). */
function countCalls(name: string): { count: () => number; reset: () => void; restore: () => void } {
  const be = getBackend() as unknown as Record<string, unknown>;
  const original = be[name] as (...args: unknown[]) => void;
  let calls = 0;
  be[name] = (...args: unknown[]) => { calls++; original(...args); };
  return { count: () => calls, reset: () => { calls = 0; }, restore: () => { be[name] = original; } };
}

/**
 * conv2dMaxPool (fused) or conv2d then maxPool2d, then a linear head's loss back-propagated
 * from fresh gradients: the pooled values and shape, and the gradients of x, w and b.
 */
function pooledStep(
  fused: boolean, x: Tensor, w: Tensor, b: Tensor, g: Conv2dGeometry, activation: 'relu' | 'none', head: Tensor, labels: Int32Array,
  ws?: Workspace,
): { values: Float32Array; shape: readonly number[]; grads: Float32Array[] } {
  for (const t of [x, w, b]) t.grad = null;
  const p = fused ? conv2dMaxPool(x, w, b, g, activation, ws) : maxPool2d(conv2d(x, w, b, g, activation), 2);
  softmaxCrossEntropy(linear(flatten(p), head, null), labels).backward();
  return { values: Float32Array.from(p.data), shape: p.shape, grads: [x, w, b].map((t) => Float32Array.from(t.grad!)) };
}

test('poolTile: F(4x4) from 16x16 outputs whose sides are multiples of 4, F(2x2) otherwise', () => {
  assert.deepEqual([[32, 32], [16, 16], [16, 20], [8, 8], [16, 12], [12, 16], [4, 4], [18, 16], [32, 30]].map(([h, w]) => poolTile(h, w)),
    [4, 4, 4, 2, 2, 2, 2, 2, 2]);
});

test('conv2dMaxPool: bitwise conv2d then maxPool2d on F(2x2) (values, every gradient), its workspace reused; two forwards before a backward', () => {
  const rng = new Rng(31, 'test');
  const g = geom(1, 1);
  const x = randomTensor([2, 8, 6, 8], rng), w = randomTensor([9, 8, 3, 3], rng, 0.5), b = randomTensor([9], rng, 0.3);
  assert.ok(poolsInOne(8, 9, 3, 3, g, 6, 8) && poolTile(6, 8) === 2);
  const head = randomTensor([3, 9 * 12], rng, 0.5, false);
  const labels = Int32Array.of(0, 2);
  const ws = new Workspace();
  for (const activation of ['relu', 'none'] as const) {
    const run = (fused: boolean, workspace?: Workspace) => pooledStep(fused, x, w, b, g, activation, head, labels, workspace);
    const want = run(false);
    for (const got of [run(true), run(true, ws), run(true, ws)]) {
      assert.deepEqual(got.shape, [2, 9, 3, 4]);
      assert.deepEqual(Buffer.from(got.values.buffer), Buffer.from(want.values.buffer), `${activation}: pooled values`);
      got.grads.forEach((gr, i) => assert.deepEqual(Buffer.from(gr.buffer), Buffer.from(want.grads[i].buffer), `${activation}: gradient ${i}`));
    }
  }
  // Two forwards before one backward: the second keeps its own buffers and winners.
  for (const t of [x, w, b]) t.grad = null;
  const p1 = conv2dMaxPool(x, w, b, g, 'relu', ws), p2 = conv2dMaxPool(x, w, b, g, 'relu', ws);
  assert.notEqual(p2.data, p1.data);
  softmaxCrossEntropy(linear(flatten(p1), head, null), labels).backward();
  const once = Float32Array.from(w.grad!);
  softmaxCrossEntropy(linear(flatten(p2), head, null), labels).backward();
  assert.deepEqual(Array.from(w.grad!), Array.from(once).map((v) => Math.fround(v + v)));
});

test('conv2dMaxPool on F(4x4): conv2d then maxPool2d within F(4x4)\'s rounding (values, every gradient)', () => {
  const rng = new Rng(35, 'test');
  const g = geom(1, 1);
  const x = randomTensor([3, 8, 16, 20], rng), w = randomTensor([9, 8, 3, 3], rng, 0.5), b = randomTensor([9], rng, 0.3);
  assert.ok(poolsInOne(8, 9, 3, 3, g, 16, 20) && poolTile(16, 20) === 4);
  const head = randomTensor([3, 9 * 80], rng, 0.5, false);
  const labels = Int32Array.of(0, 2, 1);
  for (const activation of ['relu', 'none'] as const) {
    const run = (fused: boolean) => {
      const { values, grads } = pooledStep(fused, x, w, b, g, activation, head, labels);
      return [values, ...grads];
    };
    const want = run(false), got = run(true);
    assert.ok(got[0].some((v, i) => v !== want[0][i]), `${activation}: F(4x4) gave F(2x2)'s values bit for bit`);
    // The values differ by F(4x4)'s rounding (about 8e-7 here); through the loss's gradient
    // that becomes about 1e-6 of the gradients, 1e-5 with ReLU (measured 1.1e-5 to 1.3e-5).
    ['values', 'input gradient', 'weight gradient', 'bias gradient'].forEach((what, i) => {
      const e = normErr(got[i], want[i]);
      assert.ok(e < (i === 0 ? 1e-5 : 1e-4), `${activation}: ${what} rel err ${e}`);
    });
  }
});

test('conv2dMaxPool: gradients match finite differences away from ties in the windows (F(2x2) and F(4x4))', () => {
  const g = geom(1, 1);
  // Seeds whose windows' two largest entries are far enough apart (checked below).
  for (const [h, w, seed] of [[4, 6, 32], [16, 16, 68]]) {
    const rng = new Rng(seed, 'test');
    const x = randomTensor([2, 8, h, w], rng, 0.7), wt = randomTensor([8, 8, 3, 3], rng, 0.5), b = randomTensor([8], rng, 0.3);
    // ±eps (1e-3) on one entry moves an output by at most 3e-3 (|x|, |w| < 3): keep every window's two largest farther apart.
    const y = noGrad(() => conv2d(x, wt, b, g));
    let gap = Infinity;
    for (let p = 0; p < 2 * 8; p++) for (let oy = 0; oy < h / 2; oy++) for (let ox = 0; ox < w / 2; ox++) {
      const v = [0, 1, 2, 3].map((k) => y.data[(p * h + 2 * oy + (k >> 1)) * w + 2 * ox + (k & 1)]).sort((a, c) => c - a);
      gap = Math.min(gap, v[0] - v[1]);
    }
    assert.ok(gap > 1e-2 && [x, wt].every((t) => t.data.every((v) => Math.abs(v) < 3)), `${h}x${w}: window maxima too close (${gap})`);
    const head = randomTensor([3, 8 * h * w / 4], rng, 0.5, false);
    const labels = Int32Array.of(1, 2);
    const err = gradCheck(() => headLoss(conv2dMaxPool(x, wt, b, g), head, labels), [x, wt, b], { eps: 1e-3, samples: 40 });
    assert.ok(err < 3e-2, `${h}x${w} (tile ${poolTile(h, w)}): max relative error ${err}`);
  }
});

test('a Sequential runs a Conv2d and the 2x2 max pooling after it as conv2dMaxPool where it pools in one op, with the two ops\' results', () => {
  const build = (h: number, w: number) => {
    const m = new Model('net', [
      ['conv', new Conv2d(8, 8, 3, { padding: 1, activation: 'relu' })], ['pool', new MaxPool2d(2)], ['flatten', new Flatten()],
      ['fc', new Linear(8 * Math.floor(h / 2) * Math.floor(w / 2), 3, 'none')],
    ]);
    m.initialize(new Rng(33, 'init'));
    return m;
  };
  const pool = countCalls('conv3x3Pool');
  try {
    const rng = new Rng(34, 'test');
    const labels = Int32Array.of(0, 2);
    for (const [h, w, pooledInOne] of [[8, 8, 1], [16, 16, 1], [8, 9, 0]] as const) {
      const x = randomTensor([2, 8, h, w], rng, 1, false);
      const [fused, apart] = [build(h, w), build(h, w)];
      pool.reset();
      const a = fused.forward(x);
      assert.equal(pool.count(), pooledInOne, `${h}x${w}: conv3x3Pool calls`);
      let b = x;
      for (const [, m] of apart.namedChildren()) b = m.forward(b);
      // F(2x2) gives the two ops' results bit for bit, F(4x4) (16x16) within its rounding.
      const same = (u: Float32Array, v: Float32Array, what: string) => {
        if (pooledInOne && poolTile(h, w) === 4) assert.ok(normErr(u, v) < 1e-5, `${h}x${w}: ${what} rel err ${normErr(u, v)}`);
        else assert.deepEqual(Array.from(u), Array.from(v), `${h}x${w}: ${what}`);
      };
      same(a.data, b.data, 'outputs');
      softmaxCrossEntropy(a, labels).backward();
      softmaxCrossEntropy(b, labels).backward();
      for (const [name, t] of fused.namedParameters()) same(t.grad!, apart.parameter(name).grad!, `${name}'s gradient`);
    }
  } finally {
    pool.restore();
  }
});

test('a first layer\'s backward pass is taken by the 3x3 convolution that alone reads its output: the gradients of the two ops apart', () => {
  const through = countCalls('conv3x3ThroughConv2d');
  try {
    const rng = new Rng(35, 'test');
    const g = geom(1, 1);
    // From 64x64 up the first layer keeps its own backward pass (a block of whole images would outgrow L2).
    for (const [h, pooled] of [[16, true], [6, false], [32, true], [72, true]] as const) {
      const x = randomTensor([3, 3, h, h], rng, 1, false);
      const w1 = randomTensor([8, 3, 3, 3], rng, 0.5), b1 = randomTensor([8], rng, 0.3);
      const w2 = randomTensor([8, 8, 3, 3], rng, 0.3), b2 = randomTensor([8], rng, 0.3);
      const side = pooled ? h / 2 : h;
      const head = randomTensor([3, 8 * side * side], rng, 0.5, false);
      const labels = Int32Array.of(0, 2, 1);
      // Apart: a reshape between the two layers (the same values, no copy) keeps the second from seeing the first.
      const grads = (apart: boolean) => {
        for (const t of [w1, b1, w2, b2]) t.grad = null;
        through.reset();
        const y1 = conv2d(x, w1, b1, g, 'relu');
        const x2 = apart ? reshape(y1, y1.shape) : y1;
        const y2 = pooled ? conv2dMaxPool(x2, w2, b2, g, 'relu') : conv2d(x2, w2, b2, g, 'relu');
        headLoss(y2, head, labels).backward();
        return { calls: through.count(), grads: [w1, b1, w2, b2].map((t) => Float32Array.from(t.grad!)) };
      };
      const one = grads(false), two = grads(true);
      assert.equal(one.calls, h <= 64 ? 1 : 0, `${h}x${h}: conv3x3ThroughConv2d calls`);
      assert.equal(two.calls, 0, `${h}x${h}: apart`);
      ['w1', 'b1'].forEach((name, i) => assert.ok(normErr(one.grads[i], two.grads[i]) < 1e-6, `${h}x${h}: ${name}'s gradient, rel err ${normErr(one.grads[i], two.grads[i])}`));
      ['w2', 'b2'].forEach((name, i) => assert.deepEqual(one.grads[i + 2], two.grads[i + 2], `${h}x${h}: ${name}'s gradient`));
    }

    // Through it, the first layer's gradients match finite differences (no ReLU: no kinks). With a
    // second reader of its output (a residual join), the op is not used, and they match too.
    const x = randomTensor([2, 3, 6, 6], rng, 1, false);
    const w1 = randomTensor([8, 3, 3, 3], rng, 0.5), b1 = randomTensor([8], rng, 0.3), w2 = randomTensor([8, 8, 3, 3], rng, 0.3);
    const head = randomTensor([3, 8 * 36], rng, 0.5, false);
    const labels = Int32Array.of(1, 2);
    for (const joined of [false, true]) {
      through.reset();
      const f = () => {
        const y1 = conv2d(x, w1, b1, g);
        const y2 = conv2d(y1, w2, null, g);
        return headLoss(joined ? add(y2, y1) : y2, head, labels);
      };
      const err = gradCheck(f, [w1, b1, w2], { eps: 1e-2, samples: 40 });
      assert.equal(through.count(), joined ? 0 : 1, `joined ${joined}: conv3x3ThroughConv2d calls`);
      assert.ok(err < 1e-2, `joined ${joined}: max relative error ${err}`);
    }
  } finally {
    through.restore();
  }
});

test('conv2d: chained convolutions back-propagate through col2im (input gradient of the second)', () => {
  const rng = new Rng(13, 'test');
  const g = geom(1, 1);
  const x = randomTensor([2, 2, 6, 6], rng), w1 = randomTensor([3, 2, 3, 3], rng, 0.5), w2 = randomTensor([2, 3, 3, 3], rng, 0.5);
  const head = randomTensor([3, 2 * 36], rng, 0.5, false);
  const labels = Int32Array.of(1, 0);
  const err = gradCheck(() => headLoss(conv2d(conv2d(x, w1, null, g), w2, null, g), head, labels), [x, w1, w2], { samples: 40 });
  assert.ok(err < 1e-2, `max relative error ${err}`);
});

test('maxPool2d: values, first maximum on ties, NaN wins, and gradients match finite differences', () => {
  const x = new Tensor(Float32Array.from([
    1, 5, 2, 2, 0,
    3, 4, 2, 2, 9,
    -1, -2, NaN, 0, 1,
    -3, -4, 7, 8, 1,
  ]), [1, 1, 4, 5], true);
  const y = maxPool2d(x, 2);
  assert.deepEqual(y.shape, [1, 1, 2, 2]);
  assert.deepEqual([...y.data], [5, 2, -1, NaN]);
  // Gradient goes to the first maximum of each window (the tie of 2s: the top-left one), and the NaN.
  const yy = maxPool2d(x, 2);
  yy.grad = Float32Array.from([1, 2, 3, 4]);
  yy.backwardFn!();
  assert.deepEqual([...x.grad!], [0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0]);

  const rng = new Rng(14, 'test');
  for (const [shape, k, s] of [[[2, 3, 4, 6], 2, 2], [[1, 2, 5, 7], 2, 2], [[2, 2, 7, 5], 3, 2], [[1, 1, 6, 6], 3, 3]] as const) {
    const t = randomTensor([...shape], rng);
    const out = noGrad(() => maxPool2d(t, k, s));
    const w = randomTensor([3, out.size / shape[0]], rng, 0.5, false);
    const labels = Int32Array.from({ length: shape[0] }, (_, i) => i % 3);
    // eps well below the gap between distinct normal draws keeps every argmax fixed.
    const err = gradCheck(() => headLoss(maxPool2d(t, k, s), w, labels), [t], { eps: 1e-4, samples: 60 });
    assert.ok(err < 2e-2, `pool ${shape} k${k} s${s}: max relative error ${err}`);
  }
});

test('flatten shares data and its gradient flows back unchanged', () => {
  const rng = new Rng(15, 'test');
  const x = randomTensor([3, 2, 2, 2], rng);
  const y = flatten(x);
  assert.deepEqual(y.shape, [3, 8]);
  assert.equal(y.data, x.data);
  const w = randomTensor([4, 8], rng, 0.5);
  const labels = Int32Array.of(0, 3, 1);
  assert.ok(gradCheck(() => softmaxCrossEntropy(linear(flatten(x), w, null), labels), [x, w]) < 1e-2);
  assert.equal(new Flatten().forward(x).size, 24);
});

test('dropout: gradient with a fixed mask, seeded masks, identity when not training', () => {
  const rng = new Rng(16, 'test');
  const x = randomTensor([4, 6], rng), w = randomTensor([3, 6], rng, 0.5);
  const keep = dropoutMask(new Float32Array(24), 0.5, new Rng(0, 'mask'));
  assert.ok(keep.every((v) => v === 0 || v === 2));
  const labels = Int32Array.of(0, 1, 2, 0);
  assert.ok(gradCheck(() => softmaxCrossEntropy(linear(dropout(x, keep), w, null), labels), [x, w]) < 1e-2);

  // Mask statistics: about p dropped, kept entries scaled by 1/(1-p).
  const big = dropoutMask(new Float32Array(100000), 0.3, new Rng(1, 'mask'));
  const dropped = big.filter((v) => v === 0).length / big.length;
  assert.ok(Math.abs(dropped - 0.3) < 0.01, `dropped ${dropped}`);
  assert.ok(big.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));

  // The layer: identity (the same tensor) when not training; masks from its own stream, never Math.random.
  const layer = new Dropout(0.5, 1);
  layer.eval();
  assert.equal(layer.forward(x), x);
  layer.train();
  const random = Math.random;
  Math.random = () => { throw new Error('Math.random used'); };
  try {
    const a = noGrad(() => layer.forward(x));
    const b = noGrad(() => layer.forward(x));
    assert.notDeepEqual(a.data, b.data, 'the stream advances between training passes');
    const fresh = new Dropout(0.5, 1);
    assert.deepEqual(noGrad(() => fresh.forward(x)).data, a.data, 'a fresh layer draws the same masks');
    fresh.seed(7);
    assert.notDeepEqual(noGrad(() => fresh.forward(x)).data, a.data, 'seed() restarts the stream elsewhere');
    for (let i = 0; i < x.size; i++) assert.ok(a.data[i] === 0 || Math.abs(a.data[i] - 2 * x.data[i]) < 1e-6);
  } finally {
    Math.random = random;
  }
  assert.throws(() => new Dropout(1), /probability must be in \[0, 1\), got 1/);
});

test('Conv2d layer: PyTorch layout, Glorot normal with fan = channels·kh·kw, zero bias; pooling layer', () => {
  const layer = new Conv2d(64, 128, 3, { padding: 'same', activation: 'relu' });
  assert.deepEqual(layer.weight.shape, [128, 64, 3, 3]);
  assert.deepEqual(layer.geometry, { strideH: 1, strideW: 1, padH: 1, padW: 1 });
  layer.bias!.data.fill(1);
  layer.initialize(new Rng(0, 'init'));
  assert.ok(layer.bias!.data.every((v) => v === 0));
  let s2 = 0;
  for (const v of layer.weight.data) s2 += v * v;
  const std = Math.sqrt(s2 / layer.weight.size), want = Math.sqrt(2 / (64 * 9 + 128 * 9));
  assert.ok(Math.abs(std / want - 1) < 0.02, `std ${std} vs ${want}`);
  assert.deepEqual(layer.prunable(), ['weight']);
  assert.deepEqual(layer.namedParameters().map(([n]) => n), ['weight', 'bias']);
  assert.deepEqual(new MaxPool2d(2).prunable(), []);
  assert.deepEqual(new MaxPool2d(2).forward(Tensor.zeros([2, 3, 32, 32])).shape, [2, 3, 16, 16]);
  assert.throws(() => new Conv2d(3, 4, 2, { padding: 'same' }), /padding 'same' needs an odd kernel and stride 1/);
});

test('workspaces: buffers reused once backward has run, never while a graph still needs them; same gradients', () => {
  const rng = new Rng(17, 'test');
  const g = geom(1, 1);
  const x = randomTensor([2, 3, 6, 6], rng), w = randomTensor([4, 3, 3, 3], rng, 0.5), b = randomTensor([4], rng, 0.3);
  const head = randomTensor([3, 4 * 9], rng, 0.5, false);
  const labels = Int32Array.of(0, 2);
  const convWs = new Workspace(), poolWs = new Workspace();
  const run = (ws: boolean) => {
    for (const t of [x, w, b]) t.grad = null;
    const y = conv2d(x, w, b, g, 'relu', ws ? convWs : undefined);
    const p = maxPool2d(y, 2, 2, ws ? poolWs : undefined);
    const loss = softmaxCrossEntropy(linear(flatten(p), head, null), labels);
    loss.backward();
    return { y, p, loss: loss.data[0], grads: [x, w, b].map((t) => Float32Array.from(t.grad!)) };
  };
  const plain = run(false);
  const first = run(true), second = run(true);
  assert.equal(second.y.data, first.y.data, 'conv output buffer reused after backward');
  assert.equal(second.p.data, first.p.data, 'pool output buffer reused after backward');
  assert.equal(first.y.grad, null, 'the finished tensor no longer aliases the gradient buffer');
  for (const r of [first, second]) {
    assert.equal(r.loss, plain.loss);
    r.grads.forEach((gr, i) => assert.deepEqual(gr, plain.grads[i]));
  }
  // Two forwards before one backward (weight sharing): the second must not overwrite the first.
  for (const t of [x, w, b]) t.grad = null;
  const y1 = conv2d(x, w, b, g, 'relu', convWs);
  const y2 = conv2d(x, w, b, g, 'relu', convWs);
  assert.notEqual(y2.data, y1.data);
  const both = softmaxCrossEntropy(linear(flatten(maxPool2d(y1, 2)), head, null), labels);
  assert.ok(Math.abs(both.data[0] - plain.loss) < 1e-6);
  // Not recording (evaluation): fresh buffers, the workspace is left alone.
  const evalY = noGrad(() => conv2d(x, w, b, g, 'relu', convWs));
  assert.notEqual(evalY.data, y2.data);
  assert.notEqual(evalY.data, y1.data);
});

test('stale gradients (a Workspace output\'s): zeros to ensureGrad and backward, overwritten once through gradSink', () => {
  const t = new Tensor(new Float32Array(3), [3]);
  const buf = Float32Array.of(5, 6, 7);
  t.attachStaleGrad(buf);
  assert.deepEqual(t.gradSink(), { grad: buf, overwrite: true }, 'the first op overwrites');
  assert.deepEqual(t.gradSink(), { grad: buf, overwrite: false }, 'later ops add');
  assert.deepEqual(Array.from(buf), [5, 6, 7], 'gradSink does not zero');
  t.attachStaleGrad(buf);
  assert.deepEqual(Array.from(t.ensureGrad()), [0, 0, 0]);
  assert.equal(t.gradSink().overwrite, false);
  const fresh = new Tensor(new Float32Array(2), [2]);
  assert.equal(fresh.gradSink().overwrite, true, 'no gradient yet: overwrite');
  assert.throws(() => t.attachStaleGrad(new Float32Array(2)), /attachStaleGrad: the buffer has 2 values, the tensor 3/);
  // In a graph, a stale gradient that no op reaches is zero when its own backward reads it.
  const leaf = Tensor.zeros([2], true);
  const mid = new Tensor(new Float32Array(2), [2], true);
  mid.attachStaleGrad(Float32Array.of(9, 9));
  mid.parents = [leaf];
  mid.backwardFn = () => { leaf.ensureGrad().set(mid.grad!); };
  const out = new Tensor(new Float32Array(1), [1], true);
  out.parents = [mid];
  out.backwardFn = () => {};
  out.backward();
  assert.deepEqual(Array.from(leaf.grad!), [0, 0]);
});

test('conv ops reject bad shapes with clear errors', () => {
  const w = Tensor.zeros([4, 3, 3, 3]);
  const g = geom(1, 1);
  assert.throws(() => conv2d(Tensor.zeros([2, 3072]), w, null, g), /conv2d: input must be rank 4 \[batch, channels, height, width\], got rank 2/);
  assert.throws(() => conv2d(Tensor.zeros([2, 1, 8, 8]), w, null, g), /expects 3 input channels, input has 1/);
  assert.throws(() => conv2d(Tensor.zeros([2, 3, 8, 8]), w, Tensor.zeros([5]), g), /bias must have shape \[4\]/);
  assert.throws(() => conv2d(Tensor.zeros([1, 3, 1, 1]), w, null, geom(1, 0)), /a 3x3 kernel with padding 0x0 does not fit a 1x1 input/);
  assert.throws(() => maxPool2d(Tensor.zeros([1, 1, 1, 4]), 2), /a 2x2 window does not fit a 1x4 input/);
  assert.throws(() => conv2dMaxPool(Tensor.zeros([1, 3, 8, 8]), w, null, g), /conv2dMaxPool: a 3x3 convolution of 3 to 4 channels with stride 1x1 and padding 1x1 on 8x8 does not pool in one op/);
  assert.throws(() => conv2dMaxPool(Tensor.zeros([1, 8, 7, 8]), Tensor.zeros([8, 8, 3, 3]), null, g), /conv2dMaxPool: .* on 7x8 does not pool in one op/);
  assert.throws(() => dropout(Tensor.zeros([2, 2]), new Float32Array(3)), /mask has 3 entries, input has 4/);
});
