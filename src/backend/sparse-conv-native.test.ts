/**
 * The native sparse convolutions against the reference backend: forward (bias, ReLU),
 * input and weight gradients (both accumulate) on the Conv-2/4/6 shapes and odd
 * geometries (rectangular kernels, padding 0 to k-1, 1x1, empty rows and channels, a
 * batch of 1), at 1, 2 and 3 threads (bitwise the same) on every SIMD path this CPU has,
 * and argument validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, type NativeAddon } from './index.js';
import { onEverySimdPath, prng, randomArray } from './testing.js';
import { convMaskPattern } from '../tensor/sparse-conv.js';

const loaded = loadNative();
const native: NativeAddon | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

/** [n, inChannels, outChannels, height, width, kh, kw, padH, padW, density] */
type Case = [number, number, number, number, number, number, number, number, number, number];
const CASES: Case[] = [
  [3, 3, 8, 32, 32, 3, 3, 1, 1, 0.3],     // a first layer
  [2, 16, 24, 16, 16, 3, 3, 1, 1, 0.2],
  [5, 12, 10, 8, 8, 3, 3, 1, 1, 0.1],     // 8x8: a tile of five vectors, several images per group
  [2, 4, 6, 12, 12, 3, 3, 1, 1, 0.3],     // grids of 10 and 12 vectors (rows 13 and 14 floats apart): one tile
  [2, 6, 4, 13, 13, 3, 3, 1, 1, 0.3],
  [1, 4, 5, 7, 9, 3, 3, 0, 0, 0.5],       // valid convolution
  [2, 3, 4, 6, 5, 2, 3, 1, 2, 0.6],       // rectangular kernel, padding k-1
  [2, 5, 3, 9, 4, 1, 1, 0, 0, 0.5],       // 1x1
  [9, 2, 3, 11, 13, 5, 5, 2, 2, 0.4],     // more images than weight-gradient groups
  [2, 6, 7, 5, 5, 3, 3, 1, 1, 0],         // empty
];

function setup(c: Case, seed: number) {
  const [n, cin, cout, h, w, kh, kw, ph, pw, density] = c;
  const rnd = prng(seed);
  const mask = new Float32Array(cout * cin * kh * kw);
  for (let i = 0; i < mask.length; i++) mask[i] = rnd() < density ? 1 : 0;
  // A whole output row and a whole input channel empty when there is room for it.
  if (cout > 2) mask.fill(0, cin * kh * kw, 2 * cin * kh * kw);
  const { pattern } = convMaskPattern(mask, cout, cin, kh, kw);
  const oh = h + 2 * ph - kh + 1, ow = w + 2 * pw - kw + 1;
  return {
    n, h, w, ph, pw, oh, ow, pattern,
    vals: randomArray(pattern.nnz, rnd), x: randomArray(n * cin * h * w, rnd), bias: randomArray(cout, rnd),
    gy: randomArray(n * cout * oh * ow, rnd), gx0: randomArray(n * cin * h * w, rnd), gv0: randomArray(pattern.nnz, rnd),
  };
}

function run(be: typeof ref, s: ReturnType<typeof setup>, relu: boolean) {
  const { n, h, w, ph, pw, pattern, vals, x, bias, gy } = s;
  const y = new Float32Array(gy.length).fill(NaN), gx = s.gx0.slice(), gv = s.gv0.slice();
  be.sparseConvForward(pattern, vals, x, y, relu ? bias : null, n, h, w, ph, pw, relu);
  be.sparseConvInputGrad(pattern, vals, gy, gx, n, h, w, ph, pw);
  be.sparseConvWeightGrad(pattern, x, gy, gv, n, h, w, ph, pw);
  return { y, gx, gv };
}

function close(a: Float32Array, b: Float32Array, tol: number, what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

test('sparse conv: native matches the reference at 1, 2 and 3 threads (bitwise the same) on every SIMD path', { skip }, () => {
  const N = native!;
  const threads = N.getThreads();
  try {
    onEverySimdPath(N, (p) => {
      CASES.forEach((c, ci) => {
        const s = setup(c, 10 + ci);
        const relu = ci % 2 === 0;
        const r = run(ref, s, relu);
        let first: ReturnType<typeof run> | null = null;
        for (const t of [1, 2, 3]) {
          N.setThreads(t);
          const got = run(N as unknown as typeof ref, s, relu);
          const taps = c[1] * c[5] * c[6];
          close(got.y, r.y, 1e-5 * taps, `${p} case ${ci} forward`);
          close(got.gx, r.gx, 1e-5 * c[2] * c[5] * c[6], `${p} case ${ci} input gradient`);
          close(got.gv, r.gv, 1e-5 * c[0] * s.oh * s.ow, `${p} case ${ci} weight gradient`);
          if (first) assert.deepEqual(got, first, `${p} case ${ci}: ${t} threads differ from 1`);
          else first = got;
        }
      });
    });
  } finally {
    N.setThreads(threads);
  }
});

test('sparse conv: NaN in the input reaches the outputs that read it', { skip }, () => {
  const s = setup([1, 2, 2, 5, 5, 3, 3, 1, 1, 1], 3);
  s.x[12] = NaN; // channel 0, (2, 2): every output of the 3x3 window around it
  const r = run(ref, s, true), got = run(native! as unknown as typeof ref, s, true);
  for (let i = 0; i < r.y.length; i++) assert.equal(Number.isNaN(got.y[i]), Number.isNaN(r.y[i]), `y[${i}]`);
  assert.ok(got.y.some(Number.isNaN));
});

test('sparse conv: bad arguments are RangeErrors that say what is wrong', { skip }, () => {
  const N = native!;
  const s = setup([1, 2, 3, 5, 5, 3, 3, 1, 1, 0.5], 4);
  const { pattern: p, vals, x } = s;
  const y = new Float32Array(3 * 25);
  assert.throws(() => N.sparseConvForward(p, vals, x, y, null, 1, 5, 5, 3, 1, false), /sparseConvForward: kernel 3x3 needs padding below it, got 3x1/);
  assert.throws(() => N.sparseConvForward(p, vals, x, y.subarray(1), null, 1, 5, 5, 1, 1, false), /y has 74 elements, needs n\*outChannels\*outH\*outW = 75/);
  assert.throws(() => N.sparseConvForward({ ...p, colIdx: p.colIdx.map(() => 99) }, vals, x, y, null, 1, 5, 5, 1, 1, false), /colIdx\[0\] = 99 is outside \[0, inChannels\*kh\*kw = 18\)/);
  assert.throws(() => N.sparseConvForward({ ...p, rowPtr: Int32Array.from([0, 5, 2, p.nnz]) }, vals, x, y, null, 1, 5, 5, 1, 1, false), /rowPtr must not decrease/);
  assert.throws(() => N.sparseConvInputGrad({ ...p, tIdx: p.tIdx.map(() => -1) }, vals, y, x.slice(), 1, 5, 5, 1, 1), /tIdx\[0\] = -1 is outside/);
  assert.throws(() => N.sparseConvWeightGrad(p, x, y, vals.subarray(1), 1, 5, 5, 1, 1), /gradVals has/);
  assert.throws(() => N.sparseConvForward(p, vals, x, x, null, 1, 5, 5, 1, 1, false), /TypeError|y has|must not share/);
});
