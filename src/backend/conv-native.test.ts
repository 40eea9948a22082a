/**
 * The native conv kernels against the reference backend: im2col/col2im on odd geometries
 * (strides, paddings, rectangular and oversized kernels, the Conv-2/4/6 shapes), the
 * per-channel bias/ReLU, its backward and the bias gradient, max pooling forward/backward (ties, NaN,
 * overlapping windows), the Winograd conv3x3 (forward and flipped, paddings 0-2, odd
 * sizes, blocks that split images, accumulation, the fused bias and ReLU, NaN) and its weight gradient, a whole conv layer's forward and
 * backward composed from the kernels, argument validation, bitwise independence of the thread count, and every SIMD
 * path (child processes with LTH_SIMD set).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, reluMaskBytes, type Backend, type NativeAddon } from './index.js';
import { child, nativeChildPrelude, onEverySimdPath, prng, randomArray } from './testing.js';

const loaded = loadNative();
const native: NativeAddon | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

const outSize = (size: number, k: number, s: number, p: number) => Math.floor((size + 2 * p - k) / s) + 1;

/** [channels, height, width, kh, kw, strideH, strideW, padH, padW] */
type Geometry = [number, number, number, number, number, number, number, number, number];
const GEOMETRIES: Geometry[] = [
  [1, 1, 1, 1, 1, 1, 1, 0, 0],
  [3, 32, 32, 3, 3, 1, 1, 1, 1],       // Conv-2/4/6 first layer
  [64, 16, 16, 3, 3, 1, 1, 1, 1],      // Conv-4/6 third layer
  [2, 7, 5, 3, 3, 1, 1, 1, 1],
  [3, 9, 11, 3, 3, 2, 2, 1, 1],
  [2, 5, 7, 2, 3, 2, 1, 1, 0],
  [1, 4, 4, 5, 5, 3, 3, 2, 2],         // kernel larger than the input
  [2, 3, 6, 3, 3, 1, 1, 2, 2],         // padding larger than k-1: output larger than input
  [5, 13, 1, 3, 1, 1, 1, 1, 0],
  [4, 17, 33, 1, 1, 2, 3, 0, 0],
  [3, 33, 17, 7, 5, 3, 2, 3, 2],
  [16, 32, 32, 3, 3, 2, 2, 1, 1],      // ResNet-20's stride-2 3×3 (vectorised stride-2 rows)
  [2, 9, 21, 3, 3, 2, 2, 1, 1],        // odd width: rows end in the scalar tail
  [3, 10, 8, 3, 3, 2, 2, 1, 1],        // 3 wide, stride 2, padding 1 across: a window row's three column rows together, whole groups of 4
  [2, 6, 14, 3, 3, 2, 2, 1, 1],        // ... a group of 4 outputs and a tail of 3
  [2, 5, 2, 3, 3, 2, 2, 1, 1],         // ... one output a row
  [2, 7, 11, 5, 3, 1, 2, 2, 1],        // ... kernel 5 high, stride 1 down
  [2, 8, 19, 3, 3, 2, 2, 0, 0],
  [32, 16, 16, 1, 1, 2, 2, 0, 0],      // ResNet-20's stride-2 1×1 shortcut
];

test('the addon implements every Backend kernel (getBackend() hands its functions out directly)', { skip }, () => {
  const missing = Object.entries(ref).filter(([k, v]) => typeof v === 'function' && typeof (native as unknown as Record<string, unknown>)[k] !== 'function').map(([k]) => k);
  assert.deepEqual(missing, []);
});

test('im2col matches the reference exactly; col2im matches and accumulates', { skip }, () => {
  const rnd = prng(1);
  for (const g of GEOMETRIES) {
    const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
    const oh = outSize(h, kh, sh, ph), ow = outSize(w, kw, sw, pw);
    const rows = c * kh * kw, cols = oh * ow;
    const x = randomArray(c * h * w, rnd);
    const c1 = new Float32Array(rows * cols + 3).fill(NaN), c2 = c1.slice();
    ref.im2col(x, c1, c, h, w, kh, kw, sh, sw, ph, pw);
    native!.im2col(x, c2, c, h, w, kh, kw, sh, sw, ph, pw);
    assert.deepEqual(c2, c1, `im2col ${g}`);
    for (let i = rows * cols; i < c2.length; i++) assert.ok(Number.isNaN(c2[i]), `im2col ${g} wrote past the end`);

    const col = randomArray(rows * cols, rnd);
    const x0 = randomArray(c * h * w + 3, rnd), x1 = x0.slice(), x2 = x0.slice();
    ref.col2im(col, x1, c, h, w, kh, kw, sh, sw, ph, pw);
    native!.col2im(col, x2, c, h, w, kh, kw, sh, sw, ph, pw);
    // Each x entry sums at most kh·kw col entries in |·| ≤ 1 onto |x0| ≤ 1.
    const tol = 1e-6 * (1 + kh * kw);
    for (let i = 0; i < x1.length; i++) assert.ok(Math.abs(x2[i] - x1[i]) <= tol, `col2im ${g} x[${i}] ${x2[i]} vs ${x1[i]}`);
    for (let i = c * h * w; i < x2.length; i++) assert.equal(x2[i], x0[i], `col2im ${g} wrote past the end`);
  }
});

test('im2col/col2im propagate NaN from where they read it', { skip }, () => {
  const [c, h, w] = [2, 5, 6];
  const x = new Float32Array(c * h * w).fill(1);
  x[7] = NaN;
  const col = new Float32Array(c * 9 * h * w);
  native!.im2col(x, col, c, h, w, 3, 3, 1, 1, 1, 1);
  const want = new Float32Array(col.length);
  ref.im2col(x, want, c, h, w, 3, 3, 1, 1, 1, 1);
  assert.deepEqual(col, want);
  assert.equal(col.filter(Number.isNaN).length, 9);
  const back = new Float32Array(c * h * w);
  native!.col2im(col, back, c, h, w, 3, 3, 1, 1, 1, 1);
  // The 9 copies of x[7] (an interior pixel) all go back to x[7], and only there.
  assert.ok(Number.isNaN(back[7]));
  assert.equal(back.filter(Number.isNaN).length, 1);
});

test('channelBiasAct and sumChannels match the reference (NaN kept, in place, accumulate)', { skip }, () => {
  const rnd = prng(2);
  for (const [n, ch, size] of [[0, 3, 4], [1, 1, 1], [2, 3, 5], [3, 7, 33], [60, 64, 1024], [4, 5, 17]] as const) {
    const x = randomArray(n * ch * size, rnd), bias = randomArray(ch, rnd);
    if (x.length > 2) x[1] = NaN;
    for (const relu of [false, true]) {
      const o1 = new Float32Array(x.length), o2 = new Float32Array(x.length);
      ref.channelBiasAct(x, bias, o1, n, ch, size, relu);
      native!.channelBiasAct(x, bias, o2, n, ch, size, relu);
      assert.deepEqual(o2, o1, `channelBiasAct ${n}x${ch}x${size} relu=${relu}`);
      const inPlace = x.slice();
      native!.channelBiasAct(inPlace, bias, inPlace, n, ch, size, relu);
      assert.deepEqual(inPlace, o1);
    }
    const g = randomArray(n * ch * size, rnd);
    for (const acc of [false, true]) {
      const s0 = randomArray(ch, rnd), s1 = s0.slice(), s2 = s0.slice();
      ref.sumChannels(g, s1, n, ch, size, acc);
      native!.sumChannels(g, s2, n, ch, size, acc);
      for (let j = 0; j < ch; j++) {
        assert.ok(Math.abs(s2[j] - s1[j]) <= 1e-6 * (1 + Math.sqrt(n * size)), `sumChannels ${n}x${ch}x${size} acc=${acc} [${j}] ${s2[j]} vs ${s1[j]}`);
      }
    }
  }
  const x = new Float32Array([1, 2, NaN, 4, 5, 6]);
  const s = new Float32Array(2);
  native!.sumChannels(x, s, 1, 2, 3, false);
  assert.ok(Number.isNaN(s[0]) && s[1] === 15);
});

test('channelBiasActBackward: reluBackward then sumChannels, bit for bit, and the reference\'s (NaN, no bias, no ReLU)', { skip }, () => {
  const rnd = prng(4);
  for (const [n, ch, size] of [[0, 3, 4], [1, 1, 1], [2, 3, 5], [3, 7, 33], [60, 64, 1024], [4, 5, 17]] as const) {
    const g = randomArray(n * ch * size, rnd), y = randomArray(n * ch * size, rnd), b0 = randomArray(ch, rnd);
    if (g.length > 5) { g[1] = NaN; y[4] = NaN; y[5] = 0; }
    for (const relu of [false, true]) {
      for (const withBias of [false, true]) {
        const what = `${n}x${ch}x${size} relu=${relu} bias=${withBias}`;
        const g1 = g.slice(), b1 = b0.slice(), g2 = g.slice(), b2 = b0.slice(), g3 = g.slice(), b3 = b0.slice();
        native!.channelBiasActBackward(g1, y, withBias ? b1 : null, n, ch, size, relu);
        if (relu) native!.reluBackward(g2, y, g2, g2.length);
        if (withBias) native!.sumChannels(g2, b2, n, ch, size, true);
        assert.deepEqual(Buffer.from(g1.buffer), Buffer.from(g2.buffer), `${what}: gradOut`);
        assert.deepEqual(Buffer.from(b1.buffer), Buffer.from(b2.buffer), `${what}: gradBias`);
        ref.channelBiasActBackward(g3, y, withBias ? b3 : null, n, ch, size, relu);
        assert.deepEqual(g1, g3, `${what}: gradOut vs the reference`);
        for (let j = 0; j < ch; j++) {
          assert.ok(Object.is(b1[j], b3[j]) || Math.abs(b1[j] - b3[j]) <= 1e-6 * (1 + Math.sqrt(n * size)), `${what}: gradBias[${j}] ${b1[j]} vs ${b3[j]}`);
        }
      }
    }
  }
});

/** [planes, height, width, k, stride] */
const POOLS: Array<[number, number, number, number, number]> = [
  [1, 2, 2, 2, 2], [3, 5, 7, 2, 2], [2, 7, 5, 3, 2], [2, 6, 6, 3, 3], [4, 9, 9, 3, 1], [2, 4, 4, 1, 1],
  [1, 1, 9, 1, 2], [128, 32, 32, 2, 2], [7, 8, 16, 2, 2], [5, 11, 13, 2, 2], [3, 4, 4, 4, 4],
];

test('maxPool2d and its backward match the reference (odd sizes, overlapping windows, ties, NaN)', { skip }, () => {
  const rnd = prng(3);
  for (const [planes, h, w, k, s] of POOLS) {
    const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
    const x = randomArray(planes * h * w, rnd);
    // Ties (quantised values) and a few NaNs.
    for (let i = 0; i < x.length; i += 5) x[i] = Math.round(x[i] * 2) / 2;
    for (let i = 3; i < x.length; i += 97) x[i] = NaN;
    const o1 = new Float32Array(planes * oh * ow + 2).fill(7), o2 = o1.slice();
    ref.maxPool2d(x, o1, planes, h, w, k, s);
    native!.maxPool2d(x, o2, planes, h, w, k, s);
    assert.deepEqual(o2, o1, `maxPool2d ${[planes, h, w, k, s]}`);
    const gy = randomArray(planes * oh * ow, rnd);
    const g0 = randomArray(planes * h * w + 2, rnd), g1 = g0.slice(), g2 = g0.slice();
    ref.maxPool2dBackward(x, gy, g1, planes, h, w, k, s);
    native!.maxPool2dBackward(x, gy, g2, planes, h, w, k, s);
    const tol = 1e-6 * Math.ceil(k / s) ** 2;
    for (let i = 0; i < g1.length; i++) assert.ok(Math.abs(g2[i] - g1[i]) <= tol, `maxPool2dBackward ${[planes, h, w, k, s]} [${i}] ${g2[i]} vs ${g1[i]}`);
  }
});

/** Forward and backward of one conv layer (bias, ReLU) composed from the kernels of `be`, as src/tensor/conv.ts does. */
function convLayer(be: Backend, x: Float32Array, wt: Float32Array, b: Float32Array, gy0: Float32Array, n: number, g: Geometry, cout: number) {
  const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
  const oh = outSize(h, kh, sh, ph), ow = outSize(w, kw, sw, pw), hw = oh * ow, ckk = c * kh * kw;
  const y = new Float32Array(n * cout * hw), col = new Float32Array(ckk * hw), gcol = new Float32Array(ckk * hw);
  for (let i = 0; i < n; i++) {
    const yi = y.subarray(i * cout * hw, (i + 1) * cout * hw);
    be.im2col(x.subarray(i * c * h * w), col, c, h, w, kh, kw, sh, sw, ph, pw);
    be.matmul(wt, col, yi, cout, ckk, hw, false, false, false);
    be.channelBiasAct(yi, b, yi, 1, cout, hw, true);
  }
  const gy = gy0.slice(), gw = new Float32Array(wt.length), gb = new Float32Array(cout), gx = new Float32Array(x.length);
  be.reluBackward(gy, y, gy, gy.length);
  be.sumChannels(gy, gb, n, cout, hw, true);
  for (let i = 0; i < n; i++) {
    const gyi = gy.subarray(i * cout * hw, (i + 1) * cout * hw);
    be.im2col(x.subarray(i * c * h * w), col, c, h, w, kh, kw, sh, sw, ph, pw);
    be.matmul(gyi, col, gw, cout, hw, ckk, false, true, true);
    be.matmul(wt, gyi, gcol, ckk, cout, hw, true, false, false);
    be.col2im(gcol, gx.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, kh, kw, sh, sw, ph, pw);
  }
  return { y, gw, gb, gx };
}

/** max |a - b| / max |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

test('a whole conv layer (forward, weight/bias/input gradients) matches the reference', { skip }, () => {
  const rnd = prng(4);
  for (const [n, g, cout] of [[2, [3, 9, 7, 3, 3, 1, 1, 1, 1], 5], [3, [4, 8, 8, 3, 3, 2, 2, 1, 1], 6], [2, [16, 12, 10, 3, 3, 1, 1, 1, 1], 24]] as Array<[number, Geometry, number]>) {
    const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
    const hw = outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw);
    const x = randomArray(n * c * h * w, rnd), wt = randomArray(cout * c * kh * kw, rnd, -0.5, 0.5), b = randomArray(cout, rnd, -0.2, 0.2);
    const gy = randomArray(n * cout * hw, rnd);
    const r = convLayer(ref, x, wt, b, gy, n, g, cout), m = convLayer(native!, x, wt, b, gy, n, g, cout);
    for (const k of ['y', 'gw', 'gb', 'gx'] as const) {
      const e = relErr(m[k], r[k]);
      assert.ok(e <= 1e-5, `conv layer ${n}x${g} -> ${cout}: ${k} rel err ${e}`);
    }
  }
});

/**
 * conv2d then conv2dBackward on `be`, from the same starting gradients: the backward pass
 * takes the bias and ReLU backward itself (`fused`), or after channelBiasActBackward.
 */
function batchedConv(be: Backend, x: Float32Array, wt: Float32Array, b: Float32Array | null, gy: Float32Array, gx0: Float32Array, gw0: Float32Array,
  n: number, g: Geometry, cout: number, relu: boolean, accumulateIn: boolean, fused = true) {
  const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
  const hw = outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw);
  const y = new Float32Array(n * cout * hw).fill(NaN);
  const mask = relu ? new Uint8Array(reluMaskBytes(n, cout * hw)).fill(0xa5) : null;  // stale bytes: every one is written
  be.conv2d(x, wt, b, y, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, relu, mask);
  const gx = gx0.slice(), gw = gw0.slice(), gb = b ? Float32Array.from(b, (v) => v / 2) : null, g0 = gy.slice();
  if (fused) {
    be.conv2dBackward(x, wt, gy, gx, gw, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, accumulateIn, mask, gb);
    assert.deepEqual(gy, g0, 'conv2dBackward left gradOut as it was');
  } else {
    const masked = gy.slice();
    be.channelBiasActBackward(masked, y, gb, n, cout, hw, relu);
    be.conv2dBackward(x, wt, masked, gx, gw, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, accumulateIn, null, null);
  }
  return { y, gx, gw, gb: gb ?? new Float32Array(0), mask: mask ?? new Uint8Array(0) };
}

/** y's ReLU mask as Backend.conv2d writes it, for n images of `size` values. */
function maskOf(y: Float32Array, n: number, size: number): Uint8Array {
  const bytes = reluMaskBytes(1, size), mask = new Uint8Array(n * bytes);
  for (let b = 0; b < n; b++) for (let k = 0; k < size; k++) if (y[b * size + k] > 0) mask[b * bytes + (k >> 3)] |= 1 << (k & 7);
  return mask;
}

test('conv2d and conv2dBackward match the reference on every SIMD path (every geometry, bias/ReLU, accumulated or overwritten input gradient)', { skip }, () => {
  onEverySimdPath(native!, (path) => conv2dMatchesReference(path));
});

// The weight gradient's product runs on gemmNT or gemm by its shape (nt_product): the
// geometries' channel counts and sizes reach both, with edge blocks and k tails (every
// fourth has more than 16 output channels: on AVX-512, the first layer's on gemmNT for
// its 1024 terms, the others on gemm).
function conv2dMatchesReference(path: string) {
  const rnd = prng(12);
  let k = 0;
  for (const g of GEOMETRIES) {
    const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
    const n = 1 + (k % 3) * 5, cout = k % 4 === 1 ? 17 + k : 1 + (k * 7) % 13, hw = outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw);
    const bias = k % 2 === 0 ? randomArray(cout, rnd, -0.2, 0.2) : null, relu = k % 3 !== 1, acc = k % 2 === 1;
    k++;
    const x = randomArray(n * c * h * w, rnd), wt = randomArray(cout * c * kh * kw, rnd, -0.5, 0.5), gy = randomArray(n * cout * hw, rnd);
    const gx0 = acc ? randomArray(x.length, rnd) : new Float32Array(x.length).fill(NaN), gw0 = randomArray(wt.length, rnd);
    const r = batchedConv(ref, x, wt, bias, gy, gx0, gw0, n, g, cout, relu, acc);
    const m = batchedConv(native!, x, wt, bias, gy, gx0, gw0, n, g, cout, relu, acc);
    const what = `${path}: conv2d ${n}x${g} -> ${cout} (bias ${bias !== null}, relu ${relu}, accumulate ${acc})`;
    for (const key of ['y', 'gx', 'gw', 'gb'] as const) {
      const e = relErr(m[key], r[key]);
      assert.ok(e <= 1e-5, `${what}: ${key} rel err ${e}`);
    }
    assert.deepEqual(m.mask, relu ? maskOf(m.y, n, cout * hw) : new Uint8Array(0), `${what}: the ReLU's mask`);
  }
}

test('conv2d and conv2dBackward: per-image im2col, matmul, channelBiasAct and col2im, bit for bit (the weight gradient within rounding)', { skip }, () => {
  const rnd = prng(13);
  // The first, stride-2 and 1x1 convolutions of ResNet-20 (smaller batches), and a 1x1 stride-1 one (no columns).
  for (const [n, g, cout] of [[10, [3, 32, 32, 3, 3, 1, 1, 1, 1], 16], [9, [16, 32, 32, 3, 3, 2, 2, 1, 1], 32], [9, [32, 16, 16, 1, 1, 2, 2, 0, 0], 64],
    [5, [12, 7, 9, 1, 1, 1, 1, 0, 0], 20]] as Array<[number, Geometry, number]>) {
    const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
    const hw = outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw);
    const x = randomArray(n * c * h * w, rnd), wt = randomArray(cout * c * kh * kw, rnd, -0.5, 0.5), b = randomArray(cout, rnd, -0.2, 0.2);
    const gy = randomArray(n * cout * hw, rnd);
    const composed = convLayer(native!, x, wt, b, gy, n, g, cout);
    // convLayer's ReLU backward, then the batched kernels on its masked gradient.
    const masked = gy.slice();
    native!.reluBackward(masked, composed.y, masked, masked.length);
    const m = batchedConv(native!, x, wt, b, masked, new Float32Array(x.length), new Float32Array(wt.length), n, g, cout, true, false);
    assert.deepEqual(m.y, composed.y, `conv2d ${g}: output`);
    assert.deepEqual(m.gx, composed.gx, `conv2dBackward ${g}: input gradient`);
    assert.ok(relErr(m.gw, composed.gw) <= 1e-6, `conv2dBackward ${g}: weight gradient rel err ${relErr(m.gw, composed.gw)}`);
  }
});

test('conv2dBackward takes the bias and ReLU backward bit for bit as channelBiasActBackward before it, at any thread count', { skip }, () => {
  const rnd = prng(16);
  const before = native!.getThreads();
  try {
    // A first layer, a strided one, a 1x1 one (no columns) and one whose weight makes fewer image groups.
    for (const [n, g, cout] of [[10, [3, 32, 32, 3, 3, 1, 1, 1, 1], 16], [9, [16, 16, 16, 3, 3, 2, 2, 1, 1], 32], [7, [12, 7, 9, 1, 1, 1, 1, 0, 0], 20],
      [5, [256, 4, 4, 3, 3, 2, 2, 1, 1], 256]] as Array<[number, Geometry, number]>) {
      const [c, h, w, kh, kw, sh, sw, ph, pw] = g;
      const hw = outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw);
      const x = randomArray(n * c * h * w, rnd), wt = randomArray(cout * c * kh * kw, rnd, -0.5, 0.5), b = randomArray(cout, rnd, -0.2, 0.2);
      const gy = randomArray(n * cout * hw, rnd), gx0 = randomArray(x.length, rnd), gw0 = randomArray(wt.length, rnd);
      for (const [relu, bias] of [[true, b], [false, b], [true, null]] as const) {
        native!.setThreads(1);
        const composed = batchedConv(native!, x, wt, bias, gy, gx0, gw0, n, g, cout, relu, true, false);
        for (const threads of [1, 2, 3]) {
          native!.setThreads(threads);
          const m = batchedConv(native!, x, wt, bias, gy, gx0, gw0, n, g, cout, relu, true);
          for (const key of ['gx', 'gw', 'gb'] as const) assert.deepEqual(m[key], composed[key], `${g} -> ${cout}, relu ${relu}, bias ${bias !== null}, ${threads} threads: ${key}`);
        }
      }
      // The bias gradient alone: no products, the same sums.
      const y = new Float32Array(n * cout * hw), mask = new Uint8Array(reluMaskBytes(n, cout * hw));
      native!.conv2d(x, wt, b, y, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, true, mask);
      const alone = new Float32Array(cout), masked = gy.slice(), want = new Float32Array(cout);
      native!.conv2dBackward(x, wt, gy, null, null, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, false, mask, alone);
      native!.channelBiasActBackward(masked, y, want, n, cout, hw, true);
      assert.deepEqual(alone, want, `${g} -> ${cout}: the bias gradient alone`);
    }
  } finally {
    native!.setThreads(before);
  }
});

test('conv2d and conv2dBackward: NaN reaches what it should, and a lone gradient is computed alone', { skip }, () => {
  const g: Geometry = [3, 9, 11, 3, 3, 2, 2, 1, 1], [c, h, w, kh, kw, sh, sw, ph, pw] = g, n = 3, cout = 4;
  const hw = outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw);
  const rnd = prng(14);
  const x = randomArray(n * c * h * w, rnd), wt = randomArray(cout * c * kh * kw, rnd), gy = randomArray(n * cout * hw, rnd);
  x[c * h * w + 5] = NaN;  // image 1 only
  const y = new Float32Array(n * cout * hw), want = y.slice();
  native!.conv2d(x, wt, null, y, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, false, null);
  ref.conv2d(x, wt, null, want, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, false, null);
  for (let i = 0; i < y.length; i++) assert.equal(Number.isNaN(y[i]), Number.isNaN(want[i]), `y[${i}]`);
  assert.ok(y.subarray(0, cout * hw).every((v) => !Number.isNaN(v)) && y.subarray(cout * hw, 2 * cout * hw).some(Number.isNaN));
  const gwOnly = new Float32Array(wt.length), gxOnly = new Float32Array(x.length), gw = gwOnly.slice(), gx = gxOnly.slice();
  const clean = x.map((v) => (Number.isNaN(v) ? 0.5 : v));
  native!.conv2dBackward(clean, wt, gy, null, gwOnly, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, true, null, null);
  native!.conv2dBackward(clean, wt, gy, gxOnly, null, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, true, null, null);
  native!.conv2dBackward(clean, wt, gy, gx, gw, n, c, cout, h, w, kh, kw, sh, sw, ph, pw, true, null, null);
  assert.deepEqual(gwOnly, gw);
  assert.deepEqual(gxOnly, gx);
});

test('the ReLU\'s mask as bits: y > 0 (not for NaN, 0 or -0), every image from a byte of its own, and the backward pass masks by it (NaN gradients too), on every SIMD path', { skip }, () => {
  onEverySimdPath(native!, (path) => {
    // A 1x1 convolution by 1 on one channel: y = max(0, x), and the input gradient is the masked output gradient.
    const special = [NaN, 0, -0, -1, 2, Infinity, -Infinity, 1e-40, -1e-40];
    for (const size of [1, 7, 8, 9, 15, 16, 17, 33, 100]) {
      const n = 3, rnd = prng(size);
      const x = randomArray(n * size, rnd).map((v, i) => (i % 5 === 0 ? special[(i / 5) % special.length] : v));
      for (const be of [native!, ref]) {
        const what = `${path}, ${be === ref ? 'reference' : 'native'}, ${n} images of ${size}`;
        const y = new Float32Array(x.length), mask = new Uint8Array(reluMaskBytes(n, size)).fill(0xff);
        be.conv2d(x, Float32Array.of(1), null, y, n, 1, 1, 1, size, 1, 1, 1, 1, 0, 0, true, mask);
        assert.deepEqual(mask, maskOf(y, n, size), `${what}: the mask`);
        // Denormals are flushed on the native path, and 1e-40 then is not above 0 either: the mask follows y as stored.
        const gy = randomArray(x.length, rnd).map((v, i) => (i % 7 === 0 ? NaN : v || 0.5));
        const gx = new Float32Array(x.length).fill(7);
        be.conv2dBackward(x, Float32Array.of(1), gy, gx, null, n, 1, 1, 1, size, 1, 1, 1, 1, 0, 0, false, mask, null);
        assert.deepEqual(gx, gy.map((v, i) => (y[i] > 0 ? v : 0)), `${what}: the masked gradient`);
      }
    }
  });
});

/** [n, inChannels, outChannels, height, width, pad] */
const CONV3X3: Array<[number, number, number, number, number, number]> = [
  [2, 3, 5, 9, 7, 1],
  [1, 4, 6, 8, 8, 0],
  [2, 9, 7, 5, 6, 2],     // padding 2: the input gradient of a valid convolution
  [1, 8, 8, 3, 3, 0],     // a single output
  [12, 8, 9, 5, 5, 1],    // 36 tile rows: blocks that end inside an image
  [2, 70, 33, 11, 13, 1], // more channels than a block's tile budget assumes
  [3, 64, 64, 16, 16, 1], // Conv-4/6 shape
  [3, 64, 40, 28, 28, 1], // F(4x4): 16 of 21 tile rows per block, so blocks end inside an image
  [2, 16, 16, 8, 8, 1],   // ResNet-20's 8x8 stage: widths and outputs whole numbers of tiles (the rows-first transforms)
  [5, 8, 256, 10, 12, 1], // whole F(2x2) tiles, blocks ending inside an image; F(4x4) rows first, last tile row partial
  [3, 5, 8, 7, 2, 1],     // one F(2x2) tile per row
  [3, 5, 8, 8, 4, 1],     // one F(4x4) tile per row, whole tiles
];

/**
 * Largest error of conv3x3 relative to the output's largest magnitude, per tile. F(2×2,
 * 3×3)'s transforms only add and halve: a few units in the last place. F(4×4, 3×3)'s
 * scale inputs by up to 5 in Bᵀ, 8 in Aᵀ and 1/24 in G, and the partial sums cancel
 * afterwards, so each product carries rounding from terms up to about 100× the result:
 * measured up to 7e-7·√inChannels (6e-6 at 64 channels, 1.2e-5 at 256), about 15× the
 * F(2×2, 3×3) figure; 4e-5 holds with room to spare for these geometries' ≤ 70 channels.
 */
const CONV3X3_TOL = { 2: 1e-5, 4: 4e-5 } as const;
const TILES = [2, 4] as const;

// On every SIMD path: each has its own GEMM column panels, which the rows-first input
// transforms write V in (GemmArgs::bPacked), tail panels included.
test('conv3x3 (Winograd) matches the reference on every SIMD path: F(2x2) and F(4x4), forward and flipped, paddings 0-2, accumulate', { skip }, () => {
  onEverySimdPath(native!, (path) => {
    const rnd = prng(8);
    for (const [n, ci, co, h, w, p] of CONV3X3) {
      const oh = h + 2 * p - 2, ow = w + 2 * p - 2;
      const x = randomArray(n * ci * h * w, rnd), wt = randomArray(ci * co * 9, rnd, -0.5, 0.5), o0 = randomArray(n * co * oh * ow, rnd);
      for (const tile of TILES) {
        for (const flip of [false, true]) {
          for (const acc of [false, true]) {
            const r = o0.slice(), m = o0.slice();
            ref.conv3x3(x, wt, r, n, ci, co, h, w, p, flip, acc, tile, null, false);
            native!.conv3x3(x, wt, m, n, ci, co, h, w, p, flip, acc, tile, null, false);
            const e = relErr(m, r);
            assert.ok(e <= CONV3X3_TOL[tile], `${path}: conv3x3 ${[n, ci, co, h, w, p]} tile ${tile} flip ${flip} accumulate ${acc}: rel err ${e}`);
          }
        }
      }
    }
  });
});

test('conv3x3 with bias and ReLU: the values channelBiasAct gives after it (bitwise), and the reference\'s', { skip }, () => {
  const rnd = prng(9);
  for (const [n, ci, co, h, w, p] of CONV3X3) {
    const oh = h + 2 * p - 2, ow = w + 2 * p - 2, size = oh * ow;
    const x = randomArray(n * ci * h * w, rnd), wt = randomArray(ci * co * 9, rnd, -0.5, 0.5), o0 = randomArray(n * co * size, rnd);
    const bias = randomArray(co, rnd, -0.5, 0.5);
    for (const tile of TILES) {
      for (const flip of [false, true]) {
        for (const acc of [false, true]) {
          for (const relu of [false, true]) {
            const what = `conv3x3 ${[n, ci, co, h, w, p]} tile ${tile} flip ${flip} accumulate ${acc} relu ${relu}`;
            const fused = o0.slice(), twoPass = o0.slice(), r = o0.slice();
            native!.conv3x3(x, wt, fused, n, ci, co, h, w, p, flip, acc, tile, bias, relu);
            native!.conv3x3(x, wt, twoPass, n, ci, co, h, w, p, flip, acc, tile, null, false);
            native!.channelBiasAct(twoPass, bias, twoPass, n, co, size, relu);
            assert.deepEqual(Buffer.from(fused.buffer), Buffer.from(twoPass.buffer), `${what}: not channelBiasAct's result`);
            ref.conv3x3(x, wt, r, n, ci, co, h, w, p, flip, acc, tile, bias, relu);
            const e = relErr(fused, r);
            assert.ok(e <= CONV3X3_TOL[tile], `${what}: rel err ${e}`);
            if (relu) assert.ok(fused.every((v) => v >= 0), `${what}: a negative output`);
          }
        }
      }
    }
    // ReLU without a bias.
    const m = o0.slice(), r = o0.slice();
    native!.conv3x3(x, wt, m, n, ci, co, h, w, p, false, false, 2, null, true);
    ref.conv3x3(x, wt, r, n, ci, co, h, w, p, false, false, 2, null, true);
    assert.ok(relErr(m, r) <= CONV3X3_TOL[2] && m.every((v) => v >= 0), `conv3x3 ${[n, ci, co, h, w, p]} ReLU, no bias`);
  }
});

/** [n, inChannels, outChannels, height, width, pad] with even outputs (conv3x3Pool); tile 4 where they are multiples of 4. */
const CONV3X3_POOL: Array<[number, number, number, number, number, number]> = [
  [1, 4, 6, 8, 8, 0],     // padding 0: the phase-split input transform
  [1, 4, 6, 10, 10, 0],   // padding 0, 8x8 outputs: F(4x4)'s phase-split transform
  [12, 8, 9, 6, 6, 1],    // 36 tile rows: blocks that end inside an image
  [9, 8, 9, 12, 12, 1],   // F(4x4): 27 tile rows, blocks that end inside an image
  [3, 64, 64, 16, 16, 1], // Conv-4/6 shape (V in the GEMM's panels)
  [2, 70, 33, 12, 14, 1], // over 64 input channels (V packed by the GEMM)
  [5, 8, 256, 10, 12, 1], // wide output, blocks ending inside an image
  [3, 5, 8, 8, 4, 1],     // two tiles a row (F(2x2)), one (F(4x4))
  [1, 2, 3, 4, 1032, 1],  // F(4x4) rows of 258 tiles: winoStorePool4 pools a long row in parts
];

/** Each 2×2 window's winner in y [planes, h, w] (2·row + column): the first maximum, the first NaN if any. */
function windowWinners(y: Float32Array, planes: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(planes * (h / 2) * (w / 2));
  for (let p = 0, i = 0; p < planes; p++) {
    for (let oy = 0; oy < h / 2; oy++) {
      for (let ox = 0; ox < w / 2; ox++, i++) {
        let best = NaN, at = -1;
        for (let k = 0; k < 4; k++) {
          const v = y[(p * h + 2 * oy + (k >> 1)) * w + 2 * ox + (k & 1)];
          if (at < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) [best, at] = [v, k];
        }
        out[i] = at;
      }
    }
  }
  return out;
}

test('conv3x3Pool on every SIMD path, both tiles: bitwise conv3x3 then maxPool2d, each window\'s first maximum (ties, NaN), near the reference', { skip }, () => {
  onEverySimdPath(native!, (path) => {
    const rnd = prng(21);
    for (const [n, ci, co, h, w, p] of CONV3X3_POOL) for (const tile of [2, 4] as const) {
      const oh = h + 2 * p - 2, ow = w + 2 * p - 2, planes = n * co, pooledSize = planes * (oh / 2) * (ow / 2);
      if (oh % tile !== 0 || ow % tile !== 0) continue;
      const x = randomArray(n * ci * h * w, rnd), wt = randomArray(ci * co * 9, rnd, -0.5, 0.5);
      x[((n - 1) * ci + ci - 1) * h * w + h * w - w - 2] = NaN;  // reaches the outputs of one tile: a NaN window
      // Biases below zero: after ReLU whole windows are 0, ties the first entry wins.
      const bias = randomArray(co, rnd, -1.5, 0.5);
      for (const b of [bias, null]) {
        for (const relu of [true, false]) {
          const what = `${path}: conv3x3Pool ${[n, ci, co, h, w, p]} tile ${tile} bias ${b !== null} relu ${relu}`;
          const y = new Float32Array(planes * oh * ow);
          native!.conv3x3(x, wt, y, n, ci, co, h, w, p, false, false, tile, b, relu);
          const want = new Float32Array(pooledSize);
          native!.maxPool2d(y, want, planes, oh, ow, 2, 2);
          const pooled = new Float32Array(pooledSize).fill(7), argmax = new Uint8Array(pooledSize).fill(9);
          native!.conv3x3Pool(x, wt, pooled, argmax, n, ci, co, h, w, p, tile, b, relu);
          assert.deepEqual(Buffer.from(pooled.buffer), Buffer.from(want.buffer), `${what}: not maxPool2d of conv3x3`);
          assert.deepEqual(argmax, windowWinners(y, planes, oh, ow), `${what}: argmax`);
          if (relu) assert.ok(argmax.some((k, i) => k === 0 && pooled[i] === 0), `${what}: no all-zero window to test ties on`);
          assert.ok(pooled.some(Number.isNaN), `${what}: the NaN did not arrive`);
          const r = new Float32Array(pooledSize), ra = new Uint8Array(pooledSize);
          ref.conv3x3Pool(x, wt, r, ra, n, ci, co, h, w, p, tile, b, relu);
          const ry = new Float32Array(planes * oh * ow);
          ref.conv3x3(x, wt, ry, n, ci, co, h, w, p, false, false, tile, b, relu);
          assert.deepEqual(ra, windowWinners(ry, planes, oh, ow), `${what}: the reference's argmax`);
          // Compared where neither is NaN: Winograd's NaN reaches its whole tile, the direct sum's only the windows over it.
          const both = (a: Float32Array, c: Float32Array) => a.map((v, i) => (Number.isNaN(v) || Number.isNaN(c[i]) ? 0 : v));
          const e = relErr(both(pooled, r), both(r, pooled));
          assert.ok(e <= CONV3X3_TOL[tile], `${what}: rel err ${e} from the reference`);
        }
      }
    }
  });
});

test('maxPool2dActBackward: bitwise what zeroing, maxPool2dBackward and channelBiasActBackward leave (native and reference)', { skip }, () => {
  const rnd = prng(22);
  for (const [n, c, h, w] of [[2, 3, 4, 6], [3, 5, 10, 14], [2, 64, 32, 32], [1, 2, 2, 18]]) {
    const planes = n * c, size = h * w, ps = size / 4;
    const y = randomArray(planes * size, rnd);
    for (let i = 0; i < y.length; i += 3) y[i] = Math.max(0, Math.round(y[i] * 2) / 2);  // ties, zeros
    for (let i = 5; i < y.length; i += 211) y[i] = NaN;
    const gp = randomArray(planes * ps, rnd);
    gp[1] = -0;
    const gb0 = randomArray(c, rnd);
    for (const be of [native!, ref] as Backend[]) {
      const pooled = new Float32Array(planes * ps);
      be.maxPool2d(y, pooled, planes, h, w, 2, 2);
      const argmax = windowWinners(y, planes, h, w);
      for (const relu of [true, false]) {
        for (const withBias of [true, false]) {
          const what = `${be.name}: maxPool2dActBackward ${[n, c, h, w]} relu ${relu} bias ${withBias}`;
          const want = new Float32Array(planes * size), wantBias = withBias ? gb0.slice() : null;
          be.maxPool2dBackward(y, gp, want, planes, h, w, 2, 2);
          be.channelBiasActBackward(want, y, wantBias, n, c, size, relu);
          const got = randomArray(planes * size, rnd), gotBias = withBias ? gb0.slice() : null;
          be.maxPool2dActBackward(gp, pooled, argmax, got, gotBias, n, c, h, w, relu);
          assert.deepEqual(Buffer.from(got.buffer), Buffer.from(want.buffer), `${what}: gradOut`);
          if (withBias) assert.deepEqual(Buffer.from(gotBias!.buffer), Buffer.from(wantBias!.buffer), `${what}: gradBias`);
        }
      }
    }
  }
});

test('conv3x3WeightGrad (Winograd) matches the reference and accumulates on every SIMD path: F(2x2) and F(4x4)', { skip }, () => {
  onEverySimdPath(native!, (path) => {
    const rnd = prng(11);
    for (const [n, ci, co, h, w, p] of CONV3X3) {
      const oh = h + 2 * p - 2, ow = w + 2 * p - 2;
      const x = randomArray(n * ci * h * w, rnd), gy = randomArray(n * co * oh * ow, rnd), g0 = randomArray(ci * co * 9, rnd);
      for (const tile of TILES) {
        const r = g0.slice(), m = g0.slice();
        ref.conv3x3WeightGrad(x, gy, r, n, ci, co, h, w, p, tile);
        native!.conv3x3WeightGrad(x, gy, m, n, ci, co, h, w, p, tile);
        const e = relErr(m.map((v, i) => v - g0[i]), r.map((v, i) => v - g0[i]));
        assert.ok(e <= CONV3X3_TOL[tile], `${path}: conv3x3WeightGrad ${[n, ci, co, h, w, p]} tile ${tile}: rel err ${e}`);
      }
    }
  });
});

/**
 * conv3x3ThroughConv2d's cases: [n, first layer: inChannels, inHeight, inWidth, kh, kw,
 * strideH, strideW, padH, padW; channels (its output's), the 3×3 convolution's outChannels
 * and pad].
 */
const THROUGH: Array<[number, number, number, number, number, number, number, number, number, number, number, number, number]> = [
  [3, 3, 32, 32, 3, 3, 1, 1, 1, 1, 8, 8, 1],   // Conv-2's first two layers, narrower; an odd number of images (blocks of whole images)
  [2, 3, 9, 11, 3, 3, 2, 2, 1, 1, 8, 12, 1],   // a strided first layer, 5x6 output
  [5, 2, 8, 8, 1, 1, 1, 1, 0, 0, 9, 8, 0],     // a 1x1 first layer (its image is its columns); a valid 3x3 after it
  [1, 3, 6, 7, 3, 3, 1, 1, 1, 1, 8, 10, 2],    // padding 2: the 3x3's input gradient is a valid convolution
  [7, 3, 16, 16, 3, 3, 1, 1, 1, 1, 16, 16, 1], // several blocks of whole images
];

test('conv3x3ThroughConv2d: the two calls it stands for (bias bit for bit, weight within its sum\'s order) and the reference, on every SIMD path', { skip }, () => {
  onEverySimdPath(native!, (path) => {
    const rnd = prng(21);
    for (const [n, c0, h0, w0, kh, kw, sh, sw, ph, pw, ch, co, pad] of THROUGH) {
      const h = outSize(h0, kh, sh, ph), w = outSize(w0, kw, sw, pw), oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
      const x = randomArray(n * c0 * h0 * w0, rnd), y = randomArray(n * ch * h * w, rnd).map((v) => Math.max(0, v));
      const gy = randomArray(n * co * oh * ow, rnd), wt = randomArray(co * ch * 9, rnd);
      const gw0 = randomArray(ch * c0 * kh * kw, rnd), gb0 = randomArray(ch, rnd), unread = new Float32Array(gw0.length);
      for (const tile of TILES) {
        for (const relu of [true, false]) {
          const what = `${path}: ${[n, c0, h0, w0, kh, kw, sh, sw, ph, pw, ch, co, pad]} tile ${tile} relu ${relu}`;
          const one = { gw: gw0.slice(), gb: gb0.slice() }, two = { gw: gw0.slice(), gb: gb0.slice() }, r = { gw: gw0.slice(), gb: gb0.slice() };
          const mask = relu ? maskOf(y, n, ch * h * w) : null;
          native!.conv3x3ThroughConv2d(gy, wt, x, mask, one.gw, one.gb, n, co, ch, h, w, pad, tile, c0, h0, w0, kh, kw, sh, sw, ph, pw);
          const gx = new Float32Array(y.length);
          native!.conv3x3(gy, wt, gx, n, co, ch, oh, ow, 2 - pad, true, false, tile, null, false);
          native!.conv2dBackward(x, unread, gx, null, two.gw, n, c0, ch, h0, w0, kh, kw, sh, sw, ph, pw, false, mask, two.gb);
          ref.conv3x3ThroughConv2d(gy, wt, x, mask, r.gw, r.gb, n, co, ch, h, w, pad, tile, c0, h0, w0, kh, kw, sh, sw, ph, pw);
          assert.deepEqual(one.gb, two.gb, `${what}: gradBias against the two calls`);
          const d = (a: Float32Array, b: Float32Array) => a.map((v, i) => v - b[i]);
          const e2 = relErr(d(one.gw, gw0), d(two.gw, gw0)), er = relErr(d(one.gw, gw0), d(r.gw, gw0)), eb = relErr(d(one.gb, gb0), d(r.gb, gb0));
          assert.ok(e2 <= 1e-6, `${what}: gradWeight against the two calls, rel err ${e2}`);
          assert.ok(er <= CONV3X3_TOL[tile] && eb <= CONV3X3_TOL[tile], `${what}: against the reference, rel err ${er} (weight), ${eb} (bias)`);
          // Without a bias gradient the weight's is the same; without either nothing is written.
          const only = gw0.slice();
          native!.conv3x3ThroughConv2d(gy, wt, x, mask, only, null, n, co, ch, h, w, pad, tile, c0, h0, w0, kh, kw, sh, sw, ph, pw);
          assert.deepEqual(only, one.gw, `${what}: gradWeight alone`);
        }
      }
    }
  });
});

test('conv3x3: the flipped convolution is the input gradient of the forward one (col2im of Wᵀ·gY)', { skip }, () => {
  const rnd = prng(9);
  for (const [n, c, o, h, w, p] of [[2, 8, 12, 7, 9, 1], [1, 9, 8, 6, 5, 0]]) {
    const oh = h + 2 * p - 2, ow = w + 2 * p - 2, hw = oh * ow, ckk = c * 9;
    const wt = randomArray(o * c * 9, rnd), gy = randomArray(n * o * hw, rnd);
    const want = new Float32Array(n * c * h * w), gcol = new Float32Array(ckk * hw);
    for (let i = 0; i < n; i++) {
      ref.matmul(wt, gy.subarray(i * o * hw, (i + 1) * o * hw), gcol, ckk, o, hw, true, false, false);
      ref.col2im(gcol, want.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, 3, 3, 1, 1, p, p);
    }
    for (const tile of TILES) {
      const got = new Float32Array(want.length);
      native!.conv3x3(gy, wt, got, n, o, c, oh, ow, 2 - p, true, true, tile, null, false);
      const e = relErr(got, want);
      assert.ok(e <= CONV3X3_TOL[tile], `input gradient ${[n, c, o, h, w, p]} tile ${tile}: rel err ${e}`);
    }
  }
});

test('conv3x3: a NaN reaches every output whose window holds it (and at most its output tiles)', { skip }, () => {
  const rnd = prng(10);
  const [n, c, o, h, w, p] = [2, 8, 8, 9, 10, 1];
  const x = randomArray(n * c * h * w, rnd), wt = randomArray(o * c * 9, rnd);
  x[(1 * c + 3) * h * w + 4 * w + 5] = NaN;  // image 1, channel 3, (4, 5): padded (5, 6)
  const r = new Float32Array(n * o * h * w);
  ref.conv3x3(x, wt, r, n, c, o, h, w, p, false, false, 2, null, false);
  assert.equal(r.filter(Number.isNaN).length, o * 9);
  // Padded (5, 6) lies in the patches of the tiles with output rows 2..5, columns 4..7 (2x2
  // tiles: 4x4 patches at multiples of 2), and rows 0..7, columns 4..7 (4x4 tiles: 6x6 patches at multiples of 4).
  const reach = { 2: [2, 5, 4, 7], 4: [0, 7, 4, 7] } as const;
  for (const tile of TILES) {
    const m = new Float32Array(r.length);
    native!.conv3x3(x, wt, m, n, c, o, h, w, p, false, false, tile, null, false);
    const [y0, y1, x0, x1] = reach[tile];
    for (let i = 0; i < r.length; i++) {
      const img = Math.floor(i / (o * h * w)), oy = Math.floor(i / w) % h, ox = i % w;
      if (Number.isNaN(r[i])) assert.ok(Number.isNaN(m[i]), `tile ${tile}: output ${i} should be NaN`);
      else if (img === 0 || oy < y0 || oy > y1 || ox < x0 || ox > x1) assert.ok(Number.isFinite(m[i]), `tile ${tile}: output ${i} should be finite`);
    }
  }
});

test('conv3x3: a NaN at an image\'s left or right edge stays in its own tiles (whole-tile rows, rows-first transforms)', { skip }, () => {
  const rnd = prng(12);
  // Rows of 1 to 8 tiles (a row's end tiles read the neighbouring row's values, then are put right).
  for (const [n, c, o, h, w] of [[2, 8, 8, 8, 8], [2, 8, 9, 6, 16], [1, 8, 8, 12, 32], [2, 8, 8, 8, 12], [1, 8, 8, 4, 24]]) {
    const p = 1, x = randomArray(n * c * h * w, rnd), wt = randomArray(o * c * 9, rnd);
    const nans: Array<[number, number, number, number]> = [[1, 3, 3, w - 1], [0, 5, 5 % h, 0], [n - 1, 0, h - 1, w - 1]];
    for (const [img, ch, yy, xx] of nans) x[((img * c + ch) * h + yy) * w + xx] = NaN;
    const r = new Float32Array(n * o * h * w);
    ref.conv3x3(x, wt, r, n, c, o, h, w, p, false, false, 2, null, false);
    for (const tile of TILES) {
      if (w % tile !== 0) continue;
      // Output (img, oy, ox) may be NaN when its tile's patch (padded rows and columns
      // tile·t .. tile·t + tile + 1) holds one of the NaNs of its image.
      const reached = (img: number, oy: number, ox: number) => nans.some(([i, , yy, xx]) => {
        const ty = Math.floor(oy / tile), tx = Math.floor(ox / tile);
        return i === img && yy + p >= tile * ty && yy + p <= tile * ty + tile + 1 && xx + p >= tile * tx && xx + p <= tile * tx + tile + 1;
      });
      const m = new Float32Array(r.length);
      native!.conv3x3(x, wt, m, n, c, o, h, w, p, false, false, tile, null, false);
      for (let i = 0; i < r.length; i++) {
        const img = Math.floor(i / (o * h * w)), oy = Math.floor(i / w) % h, ox = i % w;
        const what = `${[n, c, o, h, w]} tile ${tile}: output ${i} (image ${img}, ${oy}, ${ox})`;
        if (Number.isNaN(r[i])) assert.ok(Number.isNaN(m[i]), `${what} should be NaN`);
        else if (!reached(img, oy, ox)) assert.ok(Number.isFinite(m[i]), `${what} should be finite`);
      }
    }
  }
});

test('conv kernels validate their arguments with clear errors', { skip }, () => {
  const N = native!;
  const f = (n: number) => new Float32Array(n);
  const err = (type: typeof TypeError, re: RegExp) => (e: unknown) => e instanceof type && re.test((e as Error).message);
  // 3x4x4 image, 3x3 kernel, pad 1: col is 27 x 16.
  assert.throws(() => N.im2col(f(48), f(431), 3, 4, 4, 3, 3, 1, 1, 1, 1), err(RangeError, /^im2col: col has 431 elements, needs .* = 432$/));
  assert.throws(() => N.im2col(f(47), f(432), 3, 4, 4, 3, 3, 1, 1, 1, 1), err(RangeError, /^im2col: x has 47 elements, needs .* = 48$/));
  assert.throws(() => N.col2im(f(432), f(47), 3, 4, 4, 3, 3, 1, 1, 1, 1), err(RangeError, /^col2im: x has 47 elements, needs .* = 48$/));
  assert.throws(() => N.im2col(f(48), f(432), 3, 4, 4, 3, 3, 0, 1, 1, 1), err(RangeError, /^im2col: strideH must be a positive integer, got 0$/));
  assert.throws(() => N.im2col(f(48), f(432), 3, 4, 4, 7, 3, 1, 1, 1, 1), err(RangeError, /^im2col: a 7x3 kernel with padding 1x1 does not fit a 4x4 image$/));
  assert.throws(() => N.im2col(f(48), new Float64Array(432) as unknown as Float32Array, 3, 4, 4, 3, 3, 1, 1, 1, 1),
    err(TypeError, /^im2col: col must be a Float32Array, got Float64Array$/));
  assert.throws(() => N.channelBiasAct(f(12), f(2), f(12), 2, 3, 2, true), err(RangeError, /^channelBiasAct: bias has 2 elements, needs channels = 3$/));
  assert.throws(() => N.sumChannels(f(11), f(3), 2, 3, 2, false), err(RangeError, /^sumChannels: x has 11 elements, needs .* = 12$/));
  assert.throws(() => N.maxPool2d(f(16), f(3), 1, 4, 4, 2, 2), err(RangeError, /^maxPool2d: out has 3 elements, needs .* = 4$/));
  assert.throws(() => N.maxPool2d(f(16), f(4), 1, 4, 4, 5, 2), err(RangeError, /^maxPool2d: a 5x5 window does not fit a 4x4 plane$/));
  assert.throws(() => N.maxPool2dBackward(f(16), f(4), f(15), 1, 4, 4, 2, 2), err(RangeError, /^maxPool2dBackward: gradIn has 15 elements, needs .* = 16$/));
  const u8 = (n: number) => new Uint8Array(n);
  // 2 images of 2 channels of 2x2 outputs: one byte of mask each.
  for (const be of [N, ref]) {
    assert.throws(() => be.conv2d(f(96), f(54), null, f(16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, u8(2)), err(TypeError, /^conv2d: reluMask goes with relu$/));
  }
  assert.throws(() => N.conv2d(f(96), f(54), null, f(16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, true, u8(1)),
    err(RangeError, /^conv2d: reluMask has 1 elements, needs n\*ceil\(outChannels\*outH\*outW\/8\) = 2$/));
  assert.throws(() => N.conv2d(f(96), f(54), null, f(16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, true, f(2) as unknown as Uint8Array),
    err(TypeError, /^conv2d: reluMask must be a Uint8Array or null, got Float32Array$/));
  const outAndMask = new ArrayBuffer(64);
  assert.throws(() => N.conv2d(f(96), f(54), null, new Float32Array(outAndMask, 0, 16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, true, new Uint8Array(outAndMask, 62, 2)),
    err(RangeError, /^conv2d: reluMask must not share memory with x, weight, bias or out$/));
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(16), null, f(54), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, u8(1), null),
    err(RangeError, /^conv2dBackward: reluMask has 1 elements, needs n\*ceil\(outChannels\*outH\*outW\/8\) = 2$/));
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(16), null, f(54), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null, f(1)), err(RangeError, /^conv2dBackward: gradBias has 1 elements, needs outChannels = 2$/));
  const sharedGw = f(56);
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(16), null, sharedGw.subarray(0, 54), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null, sharedGw.subarray(53, 55)),
    err(RangeError, /^conv2dBackward: gradBias must not share memory with gradIn, gradWeight or reluMask$/));
  const gbAndMask = new ArrayBuffer(8);
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(16), null, null, 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, new Uint8Array(gbAndMask, 0, 2), new Float32Array(gbAndMask, 0, 2)),
    err(RangeError, /^conv2dBackward: gradBias must not share memory with gradIn, gradWeight or reluMask$/));
  assert.throws(() => N.conv3x3(f(2 * 3 * 16), f(54), f(2 * 2 * 16 - 1), 2, 3, 2, 4, 4, 1, false, false, 2, null, false), err(RangeError, /^conv3x3: out has 63 elements, needs .* = 64$/));
  assert.throws(() => N.conv3x3(f(6), f(54), f(64), 1, 3, 2, 1, 2, 0, false, false, 4, null, false), err(RangeError, /^conv3x3: a 3x3 kernel with padding 0 does not fit a 1x2 image$/));
  assert.throws(() => N.conv3x3(f(2 * 3 * 16), f(54), f(2 * 2 * 16), 2, 3, 2, 4, 4, 1, false, false, 2, f(1), true), err(RangeError, /^conv3x3: bias has 1 elements, needs outChannels = 2$/));
  assert.throws(() => N.channelBiasActBackward(f(12), f(12), f(2), 2, 3, 2, true), err(RangeError, /^channelBiasActBackward: gradBias has 2 elements, needs channels = 3$/));
  assert.throws(() => N.channelBiasActBackward(f(12), f(11), null, 2, 3, 2, true), err(RangeError, /^channelBiasActBackward: y has 11 elements, needs n\*channels\*size = 12$/));
  assert.throws(() => N.conv3x3(f(2 * 3 * 16), f(54), f(2 * 2 * 16), 2, 3, 2, 4, 4, 1, false, false, 2, null, 1 as unknown as boolean), err(TypeError, /^conv3x3: relu must be a boolean, got number$/));
  assert.throws(() => N.conv3x3Pool(f(2 * 3 * 25), f(54), f(2 * 2 * 4), u8(16), 2, 3, 2, 5, 5, 1, 2, null, true), err(RangeError, /^conv3x3Pool: 2x2 pooling needs an even output, got 5x5$/));
  assert.throws(() => N.conv3x3Pool(f(2 * 3 * 16), f(54), f(2 * 2 * 4), u8(15), 2, 3, 2, 4, 4, 1, 2, null, true), err(RangeError, /^conv3x3Pool: argmax has 15 elements, needs .* = 16$/));
  assert.throws(() => N.conv3x3Pool(f(2 * 3 * 16), f(54), f(2 * 2 * 4), f(16) as unknown as Uint8Array, 2, 3, 2, 4, 4, 1, 2, null, true), err(TypeError, /^conv3x3Pool: argmax must be a Uint8Array, got Float32Array$/));
  assert.throws(() => N.maxPool2dActBackward(f(4), f(4), u8(4), f(16), null, 1, 1, 4, 5, true), err(RangeError, /^maxPool2dActBackward: 2x2 pooling needs an even height and width, got 4x5$/));
  assert.throws(() => N.maxPool2dActBackward(f(4), f(4), u8(4), f(15), null, 1, 1, 4, 4, true), err(RangeError, /^maxPool2dActBackward: gradOut has 15 elements, needs .* = 16$/));
  assert.throws(() => ref.conv3x3Pool(f(2 * 3 * 25), f(54), f(2 * 2 * 4), u8(16), 2, 3, 2, 5, 5, 1, 2, null, true), err(RangeError, /^conv3x3Pool: 2x2 pooling needs an even output, got 5x5$/));
  for (const be of [N, ref]) {
    assert.throws(() => be.conv3x3(f(2 * 3 * 16), f(54), f(2 * 2 * 16), 2, 3, 2, 4, 4, 1, false, false, 3 as 2, null, false),
      err(RangeError, /^conv3x3: tile must be 2 or 4, got 3$/));
    assert.throws(() => be.conv3x3Pool(f(2 * 3 * 16), f(54), f(2 * 2 * 4), u8(16), 2, 3, 2, 4, 4, 1, 3 as 2, null, true),
      err(RangeError, /^conv3x3Pool: tile must be 2 or 4, got 3$/));
    assert.throws(() => be.conv3x3Pool(f(2 * 3 * 36), f(54), f(2 * 2 * 9), u8(18), 2, 3, 2, 6, 6, 1, 4, null, true),
      err(RangeError, /^conv3x3Pool: pooling F\(4x4\) tiles needs an output whose sides are multiples of 4, got 6x6$/));
    assert.throws(() => be.conv3x3WeightGrad(f(2 * 3 * 16), f(2 * 2 * 16), f(54), 2, 3, 2, 4, 4, 1, 0 as 2),
      err(RangeError, /^conv3x3WeightGrad: tile must be 2 or 4, got 0$/));
  }
  // conv3x3ThroughConv2d: 2 images 3x4x4 -> 3x3 pad 1 -> y 2x4x4 -> 3x3 pad 1 -> 5 channels.
  const through = (over: Record<number, unknown>, be: Backend = N) => {
    const args: unknown[] = [f(2 * 5 * 16), f(5 * 2 * 9), f(2 * 3 * 16), u8(2 * 4), f(2 * 3 * 9), f(2), 2, 5, 2, 4, 4, 1, 4, 3, 4, 4, 3, 3, 1, 1, 1, 1];
    for (const [i, v] of Object.entries(over)) args[+i] = v;
    return () => (be.conv3x3ThroughConv2d as (...a: unknown[]) => void)(...args);
  };
  assert.doesNotThrow(through({}));
  for (const be of [N, ref]) {
    assert.throws(through({ 11: 3 }, be), err(RangeError, /^conv3x3ThroughConv2d: pad must be 0, 1 or 2, got 3$/));
    assert.throws(through({ 20: 0, 21: 0 }, be), err(RangeError, /^conv3x3ThroughConv2d: the first convolution's output is 2x2, the 3x3 convolution's input 4x4$/));
  }
  assert.throws(through({ 12: 3 }), err(RangeError, /^conv3x3ThroughConv2d: tile must be 2 or 4, got 3$/));
  assert.throws(through({ 4: f(53) }), err(RangeError, /^conv3x3ThroughConv2d: gradWeight has 53 elements, needs channels\*inChannels\*kh\*kw = 54$/));
  assert.doesNotThrow(through({ 3: null }), 'no ReLU, no mask');
  assert.throws(through({ 3: u8(7) }), err(RangeError, /^conv3x3ThroughConv2d: reluMask has 7 elements, needs n\*ceil\(channels\*height\*width\/8\) = 8$/));
  assert.throws(through({ 0: f(159) }), err(RangeError, /^conv3x3ThroughConv2d: gradOut has 159 elements, needs n\*outChannels\*outH\*outW = 160$/));
  const maskAndGb = new ArrayBuffer(8);
  assert.throws(through({ 3: new Uint8Array(maskAndGb), 5: new Float32Array(maskAndGb) }),
    err(RangeError, /^conv3x3ThroughConv2d: gradBias must not share memory with gradOut, weight or reluMask$/));
  assert.throws(() => N.conv3x3WeightGrad(f(2 * 3 * 16), f(2 * 2 * 16), f(53), 2, 3, 2, 4, 4, 1, 2), err(RangeError, /^conv3x3WeightGrad: gradWeight has 53 elements, needs .* = 54$/));
  // 2 images 3x4x4, 3x3 kernel stride 2 pad 1 -> 2x2 outputs, 2 output channels.
  assert.throws(() => N.conv2d(f(96), f(54), null, f(15), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null), err(RangeError, /^conv2d: out has 15 elements, needs n\*outChannels\*outH\*outW = 16$/));
  assert.throws(() => N.conv2d(f(96), f(53), null, f(16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null), err(RangeError, /^conv2d: weight has 53 elements, needs .* = 54$/));
  assert.throws(() => N.conv2d(f(96), f(54), f(1), f(16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null), err(RangeError, /^conv2d: bias has 1 elements, needs outChannels = 2$/));
  assert.throws(() => N.conv2d(f(96), f(54), null, f(16), 2, 3, 2, 4, 4, 7, 3, 2, 2, 1, 1, false, null), err(RangeError, /^conv2d: a 7x3 kernel with padding 1x1 does not fit a 4x4 image$/));
  assert.throws(() => N.conv2d(f(96), f(54), null, f(16), 2, 3, 2, 4, 4, 3, 3, 0, 2, 1, 1, false, null), err(RangeError, /^conv2d: strideH must be a positive integer, got 0$/));
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(16), f(95), null, 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null, null), err(RangeError, /^conv2dBackward: gradIn has 95 elements, needs .* = 96$/));
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(16), null, f(53), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null, null), err(RangeError, /^conv2dBackward: gradWeight has 53 elements, needs .* = 54$/));
  assert.throws(() => N.conv2dBackward(f(96), f(54), f(15), null, f(54), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null, null), err(RangeError, /^conv2dBackward: gradOut has 15 elements, needs .* = 16$/));
  for (const be of [N, ref]) {
    assert.throws(() => be.conv2d(f(96), f(54), null, f(16), 2, 3, 2, 4, 4, 7, 3, 2, 2, 1, 1, false, null), err(RangeError, /^conv2d: a 7x3 kernel with padding 1x1 does not fit a 4x4 image$/));
  }
  const sharedIn = f(96);
  assert.throws(() => N.conv2d(sharedIn, f(54), null, sharedIn.subarray(0, 16), 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, false, null), err(RangeError, /^conv2d: out must not share memory with x or weight$/));
  assert.throws(() => N.conv2dBackward(sharedIn, f(54), f(16), sharedIn, null, 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, true, null, null), err(RangeError, /^conv2dBackward: gradIn must not share memory with x, weight, gradOut or reluMask$/));
  const sharedW = f(54);
  assert.throws(() => N.conv2dBackward(f(96), sharedW, f(16), null, sharedW, 2, 3, 2, 4, 4, 3, 3, 2, 2, 1, 1, true, null, null), err(RangeError, /^conv2dBackward: gradWeight must not share memory with x, weight, gradOut, gradIn or reluMask$/));
  const shared = f(64);
  assert.throws(() => N.conv3x3(shared, f(36), shared, 1, 2, 2, 4, 4, 1, false, false, 2, null, false), err(RangeError, /^conv3x3: out must not share memory with x$/));
  assert.throws(() => (N.maxPool2d as unknown as (...a: unknown[]) => void)(f(16), f(4), 1, 4, 4),
    err(TypeError, /^maxPool2d: expected 7 arguments, got 5$/));
});

test('col2im leaves signed zeros as they are (stride-2 rows add -0 to the entries between)', { skip }, () => {
  for (const [c, h, w, kh, kw, sh, sw, ph, pw] of [[3, 16, 16, 3, 3, 2, 2, 1, 1], [2, 9, 21, 1, 1, 2, 2, 0, 0]]) {
    const col = new Float32Array(c * kh * kw * outSize(h, kh, sh, ph) * outSize(w, kw, sw, pw)).fill(-0);
    const x = new Float32Array(c * h * w).fill(-0);
    native!.col2im(col, x, c, h, w, kh, kw, sh, sw, ph, pw);
    assert.ok(x.every((v) => Object.is(v, -0)), `col2im ${[c, h, w, kh, kw, sh, sw, ph, pw]}: -0 + -0 stays -0`);
  }
});

test('conv kernels give bitwise identical results for 1, 2 and 3 threads', { skip }, () => {
  const rnd = prng(5);
  const before = native!.getThreads();
  const run = (threads: number, fn: () => Float32Array) => {
    native!.setThreads(threads);
    return Buffer.from(fn().buffer);
  };
  try {
    const [c, h, w] = [64, 32, 32];
    const x = randomArray(c * h * w, rnd), col = randomArray(c * 9 * h * w, rnd), bias = randomArray(c, rnd);
    const big = randomArray(8 * c * h * w, rnd), gp = randomArray(8 * c * 16 * 16, rnd), wt3 = randomArray(c * c * 9, rnd);
    const big16 = randomArray(16 * c * h * w, rnd);
    const kernels: Array<[string, () => Float32Array]> = [
      ['im2col', () => { const o = new Float32Array(col.length); native!.im2col(x, o, c, h, w, 3, 3, 1, 1, 1, 1); return o; }],
      ['col2im', () => { const o = x.slice(); native!.col2im(col, o, c, h, w, 3, 3, 1, 1, 1, 1); return o; }],
      ['im2col stride 2', () => { const o = new Float32Array(c * 9 * 16 * 16); native!.im2col(x, o, c, h, w, 3, 3, 2, 2, 1, 1); return o; }],
      ['col2im stride 2', () => { const o = x.slice(); native!.col2im(col.subarray(0, c * 9 * 16 * 16), o, c, h, w, 3, 3, 2, 2, 1, 1); return o; }],
      ['channelBiasAct', () => { const o = new Float32Array(big.length); native!.channelBiasAct(big, bias, o, 8, c, h * w, true); return o; }],
      ['sumChannels', () => { const o = new Float32Array(c); native!.sumChannels(big, o, 8, c, h * w, false); return o; }],
      ['channelBiasActBackward', () => {
        const g = big.slice(), gb = bias.slice();
        native!.channelBiasActBackward(g, big.map((v) => -v), gb, 8, c, h * w, true);
        return Float32Array.from([...g, ...gb]);
      }],
      ['maxPool2d', () => { const o = new Float32Array(gp.length); native!.maxPool2d(big, o, 8 * c, h, w, 2, 2); return o; }],
      ['maxPool2dBackward', () => { const o = new Float32Array(big.length); native!.maxPool2dBackward(big, gp, o, 8 * c, h, w, 2, 2); return o; }],
      ...([2, 4] as const).map((tile): [string, () => Float32Array] => [`conv3x3Pool tile ${tile}`, () => {
        const o = new Float32Array(gp.length), at = new Uint8Array(gp.length);
        native!.conv3x3Pool(big, wt3, o, at, 8, c, c, h, w, 1, tile, bias, true);
        return Float32Array.from([...o, ...at]);
      }]),
      ['maxPool2dActBackward', () => {
        const g = new Float32Array(big.length), gb = bias.slice(), pooled = new Float32Array(gp.length);
        native!.maxPool2d(big, pooled, 8 * c, h, w, 2, 2);
        native!.maxPool2dActBackward(gp, pooled, Uint8Array.from(gp, (v) => Math.floor((v + 1) * 2) & 3), g, gb, 8, c, h, w, true);
        return Float32Array.from([...g, ...gb]);
      }],
      ...TILES.flatMap((t): Array<[string, () => Float32Array]> => [
        [`conv3x3 tile ${t}`, () => { const o = new Float32Array(big.length); native!.conv3x3(big, wt3, o, 8, c, c, h, w, 1, false, false, t, null, false); return o; }],
        [`conv3x3 tile ${t} flipped`, () => { const o = big.slice(); native!.conv3x3(big, wt3, o, 8, c, c, h, w, 1, true, true, t, null, false); return o; }],
        [`conv3x3 tile ${t} bias ReLU`, () => { const o = big.slice(); native!.conv3x3(big, wt3, o, 8, c, c, h, w, 1, false, true, t, bias, true); return o; }],
      ]),
      ...TILES.map((t): [string, () => Float32Array] =>
        [`conv3x3 tile ${t} on 8x8`, () => { const o = new Float32Array(128 * 16 * 64); native!.conv3x3(big, wt3, o, 128, 16, 16, 8, 8, 1, false, false, t, null, false); return o; }]),
      ...TILES.map((t): [string, () => Float32Array] =>
        [`conv3x3WeightGrad tile ${t} on 8x8`, () => { const o = new Float32Array(16 * 16 * 9); native!.conv3x3WeightGrad(big, big, o, 128, 16, 16, 8, 8, 1, t); return o; }]),
      ['conv3x3WeightGrad 16 channels (the weight gradient\'s unpacked product)', () => {
        const o = new Float32Array(16 * 16 * 9);
        native!.conv3x3WeightGrad(big, gp, o, 24, 16, 16, 16, 16, 1, 4);
        return o;
      }],
      ['conv2d 3x3 stride 2 bias ReLU, with its mask', () => {
        const o = new Float32Array(8 * c * 16 * 16), mask = new Uint8Array(reluMaskBytes(8, c * 16 * 16));
        native!.conv2d(big, wt3, bias, o, 8, c, c, h, w, 3, 3, 2, 2, 1, 1, true, mask);
        return Float32Array.from([...o, ...mask]);
      }],
      ['conv2d first layer (3 channels)', () => { const o = new Float32Array(20 * c * h * w); native!.conv2d(x, wt3, null, o, 20, 3, c, h, w, 3, 3, 1, 1, 1, 1, false, null); return o; }],
      ['conv2dBackward 3x3 stride 2', () => {
        const gx = big.slice(), gw = wt3.slice();
        native!.conv2dBackward(big, wt3, gp, gx, gw, 8, c, c, h, w, 3, 3, 2, 2, 1, 1, true, null, null);
        return Float32Array.from([...gx, ...gw]);
      }],
      ['conv2dBackward with a 2.4 MB weight (fewer groups of images)', () => {
        const wide = randomArray(256 * 256 * 9, prng(15)), gx = new Float32Array(12 * 256 * 16), gw = new Float32Array(wide.length);
        native!.conv2dBackward(big, wide, gp, gx, gw, 12, 256, 256, 4, 4, 3, 3, 2, 2, 1, 1, false, null, null);
        return Float32Array.from([...gx, ...gw]);
      }],
      ['conv2dBackward 1x1 stride 2, 17 images', () => {
        const gx = new Float32Array(17 * 16 * h * w), gw = new Float32Array(16 * 16);
        native!.conv2dBackward(big, wt3, gp, gx, gw, 17, 16, 16, h, w, 1, 1, 2, 2, 0, 0, false, null, null);
        return Float32Array.from([...gx, ...gw]);
      }],
      ...TILES.map((t): [string, () => Float32Array] =>
        [`conv3x3WeightGrad tile ${t}`, () => { const o = wt3.slice(); native!.conv3x3WeightGrad(big, big, o, 8, c, c, h, w, 1, t); return o; }]),
      ...TILES.map((t): [string, () => Float32Array] => [`conv3x3ThroughConv2d tile ${t}, 8 images`, () => {
        const gw = randomArray(c * 3 * 9, prng(16)), gb = bias.slice(), mask = maskOf(big, 8, c * h * w);
        native!.conv3x3ThroughConv2d(big, wt3, x.subarray(0, 8 * 3 * h * w), mask, gw, gb, 8, c, c, h, w, 1, t, 3, h, w, 3, 3, 1, 1, 1, 1);
        return Float32Array.from([...gw, ...gb]);
      }]),
      ['conv3x3WeightGrad tile 4, 16 images (more blocks than groups: 16 blocks of 8 tile rows)', () => {
        const o = wt3.slice();
        native!.conv3x3WeightGrad(big16, big16, o, 16, c, c, h, w, 1, 4);
        return o;
      }],
    ];
    for (const [name, fn] of kernels) {
      const one = run(1, fn);
      assert.deepEqual(run(2, fn), one, `${name}: 2 threads`);
      assert.deepEqual(run(3, fn), one, `${name}: 3 threads`);
    }
  } finally {
    native!.setThreads(before);
  }
});

const INDEX_URL = new URL('./index.js', import.meta.url).href;

/** Child program: every conv kernel, native vs reference, on one odd geometry. */
const CHECK_PROGRAM = `
${nativeChildPrelude(INDEX_URL)}let s = 777;
const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296 * 2 - 1; };
const arr = (n) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = rnd(); return a; };
const worst = {};
const note = (k, a, b) => { let e = 0; for (let i = 0; i < b.length; i++) e = Math.max(e, Math.abs(a[i] - b[i])); worst[k] = Math.max(worst[k] ?? 0, Number.isNaN(e) ? Infinity : e); };
for (const [c, h, w, kh, kw, sh, sw, ph, pw] of [[3, 31, 33, 3, 3, 1, 1, 1, 1], [5, 9, 17, 3, 2, 2, 1, 1, 0]]) {
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1, ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const x = arr(c * h * w), c1 = new Float32Array(c * kh * kw * oh * ow), c2 = c1.slice();
  R.im2col(x, c1, c, h, w, kh, kw, sh, sw, ph, pw); N.im2col(x, c2, c, h, w, kh, kw, sh, sw, ph, pw); note('im2col', c2, c1);
  const x1 = x.slice(), x2 = x.slice();
  R.col2im(c1, x1, c, h, w, kh, kw, sh, sw, ph, pw); N.col2im(c1, x2, c, h, w, kh, kw, sh, sw, ph, pw); note('col2im', x2, x1);
  const b = arr(c), o1 = new Float32Array(x.length), o2 = o1.slice();
  R.channelBiasAct(x, b, o1, 1, c, h * w, true); N.channelBiasAct(x, b, o2, 1, c, h * w, true); note('channelBiasAct', o2, o1);
  const s1 = new Float32Array(c), s2 = s1.slice();
  R.sumChannels(x, s1, 1, c, h * w, false); N.sumChannels(x, s2, 1, c, h * w, false); note('sumChannels', s2, s1);
  const gy1 = x.map((v) => v * 0.5), gy2 = gy1.slice(), y = arr(x.length), gb1 = arr(c), gb2 = gb1.slice();
  R.channelBiasActBackward(gy1, y, gb1, 1, c, h * w, true); N.channelBiasActBackward(gy2, y, gb2, 1, c, h * w, true);
  note('channelBiasActBackward', gy2, gy1); note('channelBiasActBackward bias', gb2, gb1);
  const ph2 = Math.floor((h - 2) / 2) + 1, pw2 = Math.floor((w - 2) / 2) + 1;
  const p1 = new Float32Array(c * ph2 * pw2), p2 = p1.slice();
  R.maxPool2d(x, p1, c, h, w, 2, 2); N.maxPool2d(x, p2, c, h, w, 2, 2); note('maxPool2d', p2, p1);
  const gy = arr(p1.length), g1 = new Float32Array(x.length), g2 = g1.slice();
  R.maxPool2dBackward(x, gy, g1, c, h, w, 2, 2); N.maxPool2dBackward(x, gy, g2, c, h, w, 2, 2); note('maxPool2dBackward', g2, g1);
}
// The last three: rows-first transforms (widths whole tiles: 2, 3 and 1 F(4x4) tiles a row;
// outputs whole tiles of 2, then of both sizes).
for (const [n, ci, co, h, w, p] of [[3, 9, 8, 11, 7, 1], [2, 8, 10, 6, 9, 0], [1, 33, 17, 5, 5, 2], [2, 8, 10, 6, 8, 1], [3, 5, 6, 8, 12, 1], [2, 4, 5, 5, 4, 1]]) {
  const oh = h + 2 * p - 2, ow = w + 2 * p - 2, x = arr(n * ci * h * w), wt = arr(ci * co * 9);
  for (const [flip, tile] of [[false, 2], [true, 2], [false, 4], [true, 4]]) {
    const o1 = arr(n * co * oh * ow), o2 = o1.slice();
    const b = flip ? null : arr(co), relu = !flip;
    R.conv3x3(x, wt, o1, n, ci, co, h, w, p, flip, flip, tile, b, relu); N.conv3x3(x, wt, o2, n, ci, co, h, w, p, flip, flip, tile, b, relu);
    let m = 0; for (const v of o1) m = Math.max(m, Math.abs(v));
    const d = o2.map((v, i) => (v - o1[i]) / m); note('conv3x3 tile ' + tile + ' (relative)', d, new Float32Array(d.length));
  }
  const gy = arr(n * co * oh * ow);
  for (const tile of [2, 4]) {
    const g1 = new Float32Array(ci * co * 9), g2 = g1.slice();
    R.conv3x3WeightGrad(x, gy, g1, n, ci, co, h, w, p, tile); N.conv3x3WeightGrad(x, gy, g2, n, ci, co, h, w, p, tile);
    let m = 0; for (const v of g1) m = Math.max(m, Math.abs(v));
    note('conv3x3WeightGrad tile ' + tile + ' (relative)', g2.map((v, i) => (v - g1[i]) / m), new Float32Array(g1.length));
  }
}
for (const [n, c, co, h, w, kh, kw, sh, sw, ph, pw] of [[3, 3, 17, 13, 11, 3, 3, 1, 1, 1, 1], [9, 8, 13, 9, 12, 3, 3, 2, 2, 1, 1], [4, 7, 33, 8, 8, 1, 1, 2, 2, 0, 0]]) {
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1, ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const x = arr(n * c * h * w), wt = arr(co * c * kh * kw), b = arr(co), gy = arr(n * co * oh * ow);
  const y1 = new Float32Array(n * co * oh * ow), y2 = y1.slice(), m1 = new Uint8Array(n * Math.ceil(co * oh * ow / 8)), m2 = m1.slice();
  R.conv2d(x, wt, b, y1, n, c, co, h, w, kh, kw, sh, sw, ph, pw, true, m1); N.conv2d(x, wt, b, y2, n, c, co, h, w, kh, kw, sh, sw, ph, pw, true, m2);
  note('conv2d', y2, y1); note('conv2d mask', m2, m1);
  const gx1 = arr(x.length), gx2 = gx1.slice(), gw1 = arr(wt.length), gw2 = gw1.slice(), gb1 = arr(co), gb2 = gb1.slice();
  R.conv2dBackward(x, wt, gy, gx1, gw1, n, c, co, h, w, kh, kw, sh, sw, ph, pw, true, m1, gb1);
  N.conv2dBackward(x, wt, gy, gx2, gw2, n, c, co, h, w, kh, kw, sh, sw, ph, pw, true, m2, gb2);
  let m = 0; for (const v of gw1) m = Math.max(m, Math.abs(v));
  note('conv2dBackward input', gx2, gx1); note('conv2dBackward weight (relative)', gw2.map((v, i) => (v - gw1[i]) / m), new Float32Array(gw1.length));
  note('conv2dBackward bias', gb2, gb1);
}
console.log(JSON.stringify({ simd: N.simdPath(), worst }));
`;

test('conv kernels match the reference on every SIMD path (LTH_SIMD children)', { skip }, async () => {
  const paths = ['avx512', 'avx2', 'scalar'];
  const runs = await Promise.all(paths.map((path) => child({ LTH_SIMD: path, LTH_THREADS: '2' }, CHECK_PROGRAM)));
  paths.forEach((path, i) => {
    const r = runs[i];
    assert.equal(r.error, undefined, `LTH_SIMD=${path}: ${String(r.error)}`);
    for (const [k, e] of Object.entries(r.worst as Record<string, number>)) {
      assert.ok(e <= (k.includes('tile 4') ? CONV3X3_TOL[4] : 1e-5), `LTH_SIMD=${path}: ${k} differs from the reference by ${e}`);
    }
  });
});
