import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { conv2d, flatten } from './conv.js';
import { gradCheck } from './gradcheck.js';
import { linear, softmaxCrossEntropy } from './ops.js';
import { convMaskPattern, sparseConv2d, sparseConvFits, sparseConvThreshold, SPARSE_IM2COL_CONV_DENSITY_THRESHOLD } from './sparse-conv.js';
import { useSparseBelow } from './sparse.js';
import { packValues, unpackValues } from './sparse.js';
import { Tensor } from './tensor.js';

function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  const t = Tensor.zeros(shape, true);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

/** A scalar loss of y through a fixed random head (so that every output gets its own gradient). */
function loss(y: Tensor, seed = 1): Tensor {
  const rng = new Rng(seed, 'head');
  const features = y.size / y.shape[0];
  const head = randomTensor([3, features], rng, 0.3);
  head.requiresGrad = false;
  const labels = Int32Array.from({ length: y.shape[0] }, (_, i) => i % 3);
  return softmaxCrossEntropy(linear(flatten(y), head, null), labels);
}

test('convMaskPattern: rows, columns, the transposed index and flat positions', () => {
  // 2 out, 2 in, 1x2 kernel: columns c*2 + j.
  const mask = Float32Array.from([0, 1, 1, 0, /* row 1 */ 1, 0, 0, 1]);
  const { pattern: p, density } = convMaskPattern(mask, 2, 2, 1, 2);
  assert.equal(density, 0.5);
  assert.deepEqual([...p.rowPtr], [0, 2, 4]);
  assert.deepEqual([...p.colIdx], [1, 2, 0, 3]);
  assert.deepEqual([...p.flat], [1, 2, 4, 7]);
  assert.deepEqual([...p.tPtr], [0, 2, 4]);       // channel 0: k = 0, 2; channel 1: k = 1, 3
  assert.deepEqual([...p.tIdx], [0, 2, 1, 3]);
  assert.throws(() => convMaskPattern(mask, 2, 2, 2, 2), /mask has 8 values, expected 2x2x2x2/);
  assert.deepEqual([...unpackValues(p, packValues(p, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8])), new Float32Array(8))], [0, 2, 3, 0, 5, 0, 0, 8]);
});

test('sparse conv mode: auto by the threshold of the layer\'s shape and the SIMD path, on, off; geometries that fit', () => {
  const t = (cin: number, cout: number, winograd: boolean, pixels?: number) => sparseConvThreshold(cin, cout, winograd, 'avx512', pixels);
  // Winograd gains on the sparse kernels as the channels grow: the threshold falls, from
  // the table's first point to its last, linear in log2 of the channels between them.
  assert.equal(t(8, 8, true), 0.33);
  assert.equal(t(16, 16, true), 0.33);
  assert.equal(t(64, 64, true), 0.135);
  assert.ok(Math.abs(t(64, 256, true) - 0.135) < 1e-12, 'the geometric mean of 64 and 256 is 128');
  assert.ok(Math.abs(t(32, 64, true) - (0.21 + 0.135) / 2) < 1e-12);
  assert.ok(Math.abs(t(128, 256, true) - (0.135 + 0.12) / 2) < 1e-12);
  assert.equal(t(512, 512, true), 0.12);
  for (const simd of ['avx512', 'avx2'] as const) {
    for (const c of [16, 24, 32, 48, 64, 96, 128, 192, 256]) {
      assert.ok(sparseConvThreshold(c, c, true, simd) >= sparseConvThreshold(2 * c, 2 * c, true, simd), `${simd}: ${c} channels`);
    }
  }
  // Small planes lower it; im2col's does not depend on the shape.
  assert.ok(Math.abs(t(512, 512, true, 4) - (0.12 * 4) / 6) < 1e-12);
  assert.ok(Math.abs(sparseConvThreshold(256, 256, true, 'avx2', 16) - (0.19 * 16) / 23) < 1e-12);
  assert.ok(t(256, 256, true, 64) < t(256, 256, true, 1024) && t(256, 256, true, 1024) < t(256, 256, true));
  assert.equal(t(3, 64, false), SPARSE_IM2COL_CONV_DENSITY_THRESHOLD.avx512);
  assert.equal(t(64, 64, false, 4), SPARSE_IM2COL_CONV_DENSITY_THRESHOLD.avx512);
  // AVX2's crossovers are higher from 64 channels up; the baseline path and the reference
  // backend take AVX2's.
  assert.equal(sparseConvThreshold(64, 64, true, 'avx2'), 0.24);
  assert.equal(sparseConvThreshold(256, 256, true, 'avx2'), 0.19);
  assert.equal(sparseConvThreshold(3, 64, false, 'avx2'), SPARSE_IM2COL_CONV_DENSITY_THRESHOLD.avx2);
  for (const other of ['scalar', 'none'] as const) assert.equal(sparseConvThreshold(128, 128, true, other, 256), sparseConvThreshold(128, 128, true, 'avx2', 256));
  // Conv-6 on CIFAR-10 at IMP level 10 (convolutions at 19.7%): on AVX-512 every layer runs
  // dense; on AVX2 everything up to 128 channels (conv1-conv4) runs sparse. At level 13
  // (12.1%) AVX-512 runs conv2-conv5 sparse, the first layer (im2col) and conv6 dense.
  const conv6 = (density: number, simd: 'avx512' | 'avx2') => [[3, 64, 32, false], [64, 64, 32], [64, 128, 16], [128, 128, 16], [128, 256, 8], [256, 256, 8]]
    .map(([cin, cout, side, winograd = true]) => useSparseBelow(density, 'auto', sparseConvThreshold(cin as number, cout as number, winograd as boolean, simd, (side as number) ** 2)));
  assert.deepEqual(conv6(0.197, 'avx512'), [false, false, false, false, false, false]);
  assert.deepEqual(conv6(0.85 ** 13, 'avx512'), [false, true, true, true, true, false]);
  assert.deepEqual(conv6(0.197, 'avx2'), [true, true, true, true, false, false]);
  assert.equal(useSparseBelow(0.99, 'on', 0.1), true);
  assert.equal(useSparseBelow(0.01, 'off', 0.5), false);
  assert.equal(useSparseBelow(0.3, 'auto', 0.3), false, 'below the threshold only');
  assert.equal(sparseConvFits([3, 3], { strideH: 1, strideW: 1, padH: 1, padW: 1 }), true);
  assert.equal(sparseConvFits([3, 3], { strideH: 2, strideW: 2, padH: 1, padW: 1 }), false);
  assert.equal(sparseConvFits([1, 1], { strideH: 1, strideW: 1, padH: 1, padW: 0 }), false);
});

/** [n, in, out, h, w, kh, kw, pad] */
const SHAPES: Array<[number, number, number, number, number, number, number, number]> = [
  [2, 3, 8, 8, 8, 3, 3, 1],   // the Conv nets' first layer, small
  [2, 8, 8, 6, 6, 3, 3, 1],   // channels enough for the dense path's Winograd
  [1, 3, 4, 7, 5, 3, 3, 0],
  [2, 2, 3, 5, 6, 1, 1, 0],
];

test('sparseConv2d equals conv2d on the masked dense weight, forward and backward', () => {
  const rng = new Rng(5, 'test');
  for (const [n, cin, cout, h, w, kh, kw, pad] of SHAPES) {
    for (const relu of [false, true]) {
      const geometry = { strideH: 1, strideW: 1, padH: pad, padW: pad };
      const x = randomTensor([n, cin, h, w], rng), bias = randomTensor([cout], rng, 0.1);
      const wt = randomTensor([cout, cin, kh, kw], rng, 0.5);
      const mask = new Float32Array(wt.size);
      for (let i = 0; i < mask.length; i++) mask[i] = rng.uniform() < 0.3 ? 1 : 0;
      for (let i = 0; i < mask.length; i++) wt.data[i] *= mask[i];
      const { pattern } = convMaskPattern(mask, cout, cin, kh, kw);
      const vals = new Tensor(packValues(pattern, wt.data), [pattern.nnz], true);
      const act = relu ? 'relu' : 'none';
      const yd = conv2d(x, wt, bias, geometry, act);
      loss(yd).backward();
      const gxd = Float32Array.from(x.grad!), gwd = Float32Array.from(wt.grad!), gbd = Float32Array.from(bias.grad!);
      x.grad = null; bias.grad = null;
      const ys = sparseConv2d(x, vals, pattern, bias, geometry, act);
      loss(ys).backward();
      const what = `${[n, cin, cout, h, w, kh, kw, pad]} ${act}`;
      assert.deepEqual(ys.shape, yd.shape);
      for (let i = 0; i < ys.size; i++) assert.ok(Math.abs(ys.data[i] - yd.data[i]) < 1e-4, `${what} y[${i}]`);
      for (let i = 0; i < gxd.length; i++) assert.ok(Math.abs(x.grad![i] - gxd[i]) < 1e-4, `${what} gx[${i}]`);
      for (let i = 0; i < gbd.length; i++) assert.ok(Math.abs(bias.grad![i] - gbd[i]) < 1e-4, `${what} gb[${i}]`);
      const gws = unpackValues(pattern, vals.grad!, new Float32Array(wt.size));
      for (let i = 0; i < gwd.length; i++) assert.ok(Math.abs(gws[i] - gwd[i] * mask[i]) < 1e-4, `${what} gw[${i}]`);
    }
  }
});

test('sparseConv2d gradient check (input, packed weight, bias)', () => {
  const rng = new Rng(6, 'test');
  const x = randomTensor([2, 3, 6, 5], rng), bias = randomTensor([4], rng, 0.1);
  const mask = new Float32Array(4 * 3 * 9);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.uniform() < 0.4 ? 1 : 0;
  const { pattern } = convMaskPattern(mask, 4, 3, 3, 3);
  const vals = randomTensor([pattern.nnz], rng, 0.5);
  const geometry = { strideH: 1, strideW: 1, padH: 1, padW: 1 };
  const err = gradCheck(() => loss(sparseConv2d(x, vals, pattern, bias, geometry, 'none')), [x, vals, bias], { eps: 1e-2 });
  assert.ok(err < 2e-2, `gradient error ${err}`);
});

test('sparseConv2d refuses strides, oversized padding and mismatched inputs', () => {
  const { pattern } = convMaskPattern(new Float32Array(2 * 3 * 9).fill(1), 2, 3, 3, 3);
  const x = Tensor.zeros([1, 3, 5, 5]), vals = Tensor.zeros([pattern.nnz]);
  assert.throws(() => sparseConv2d(x, vals, pattern, null, { strideH: 2, strideW: 2, padH: 1, padW: 1 }, 'none'), /needs stride 1 and padding below the kernel size, got stride 2x2/);
  assert.throws(() => sparseConv2d(Tensor.zeros([1, 2, 5, 5]), vals, pattern, null, { strideH: 1, strideW: 1, padH: 1, padW: 1 }, 'none'), /input must be \[batch, 3, height, width\], got \[1, 2, 5, 5\]/);
  assert.throws(() => sparseConv2d(x, Tensor.zeros([3]), pattern, null, { strideH: 1, strideW: 1, padH: 1, padW: 1 }, 'none'), /3 packed values for a pattern of 54 nonzeros/);
});
