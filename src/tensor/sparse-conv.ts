import { getBackend, type ConvPattern, type SimdPath } from '../backend/index.js';
import { check } from '../core/errors.js';
import { outputTensor, type Conv2dGeometry, type Workspace } from './conv.js';
import { Tensor, willRecord } from './tensor.js';

/**
 * Sparse convolutions: a Conv2d computed only at the nonzeros of its weight's mask
 * (forward, input gradient, weight gradient at the nonzeros), the weight packed [nnz] in
 * row-major order so that its gradient and optimiser state are packed too, as a sparse
 * Linear's are (sparse.ts). Stride 1 with padding below the kernel size: the native kernels
 * convolve each zero-padded image in the shift form (native/sparse_conv.cc).
 */

/**
 * The mask density below which a masked stride-1 3×3 Conv2d that conv2d runs on Winograd
 * runs sparse (sparse mode 'auto'), by the geometric mean of its channels: Winograd's
 * cost per weight falls as the channels grow (its transforms serve more products), the
 * sparse kernels' does not. The crossovers depend on the SIMD path (batch 60, forward
 * and both gradients, two threads' wall clock; docs/performance.md):
 * - AVX-512 (2-core AMD EPYC, Zen 5): 16→16 at 32×32 0.33, 32→32 0.21, 64→64 0.13,
 *   64→128 and 128→128 at 16×16 0.135, 256→256 at 8×8 0.12.
 * - AVX2 (2-core AMD EPYC without AVX-512): 16→16 about 0.55, 32→32 0.30, 64→64 and
 *   64→128 0.24–0.25, 128→128 0.21–0.23, 128→256 and 256→256 at 8×8 0.18–0.21. The
 *   sparse kernels' unaligned 8-float loads cross a cache line half as often as 16-float
 *   ones, and Winograd's GEMMs run at half AVX-512's width: the sparse side loses less.
 * The baseline path (and the reference backend) take AVX2's. Between the table's points
 * the threshold is linear in log2 of the channels, and flat beyond its ends.
 */
const WINOGRAD_CROSSOVERS: Readonly<Record<'avx512' | 'avx2', ReadonlyArray<readonly [log2Channels: number, density: number]>>> = {
  avx512: ([[16, 0.33], [32, 0.21], [64, 0.135], [128, 0.135], [256, 0.12]] as const).map(([ch, d]) => [Math.log2(ch), d] as const),
  avx2: ([[16, 0.52], [32, 0.30], [64, 0.24], [128, 0.22], [256, 0.19]] as const).map(([ch, d]) => [Math.log2(ch), d] as const),
};

/**
 * The sparse kernels pay a fixed cost per nonzero and image plane: on small planes that
 * lowers the crossover by outPixels / (outPixels + SMALL_PLANE_PIXELS). Measured on
 * AVX-512: 512→512 at 4×4 0.11, at 2×2 0.08 (against 0.12 at 8×8). AVX2's small planes
 * are unmeasured: its factor is the one an earlier AVX-512 build measured.
 */
const SMALL_PLANE_PIXELS: Readonly<Record<'avx512' | 'avx2', number>> = { avx512: 2, avx2: 7 };

/**
 * The same for a convolution that conv2d runs on im2col (Conv-2/4/6's first layer, 3 input
 * channels), two threads. 3 → 64 at 32×32, sparse / dense: AVX-512 0.93–1.00 from 1% to
 * 8%, 1.04 at 10% (the sparse kernels' fixed cost per image plane is most of this small
 * layer's), so 5%; AVX2 0.55 at 20%, 0.83 at 50%, 0.98 at 70%, so 65%.
 */
export const SPARSE_IM2COL_CONV_DENSITY_THRESHOLD: Readonly<Record<'avx512' | 'avx2', number>> = { avx512: 0.05, avx2: 0.65 };

/**
 * The same for a Conv1d (computed as a height-1 Conv2d on im2col): the whole training step
 * of the models that have them, every prunable layer at one density, sparse kernels
 * against dense, two threads on AVX-512: text_cnn (64 → 128, kernel 5, 128 steps) 0.81,
 * 0.89, 0.92, 1.19 at 10, 20, 30, 50%; sensor_cnn (2 → 32 → 64 over 16 steps) 0.70, 0.79,
 * 1.08 at 10, 20, 30% (2026-12-05, docs/performance.md).
 */
export const SPARSE_CONV1D_DENSITY_THRESHOLD = 0.3;

/**
 * The density below which a masked convolution runs sparse in sparse mode 'auto':
 * `winograd`, whether its dense path is Winograd (usesWinograd); `simd`, the run
 * context's SIMD path ('none' for the reference backend); `outPixels`, its output plane's
 * size where known (a large plane is assumed otherwise).
 */
export function sparseConvThreshold(
  inChannels: number, outChannels: number, winograd: boolean, simd: SimdPath | 'none', outPixels = Infinity,
): number {
  const isa = simd === 'avx512' ? 'avx512' : 'avx2';
  if (!winograd) return SPARSE_IM2COL_CONV_DENSITY_THRESHOLD[isa];
  const c = Math.log2(Math.sqrt(inChannels * outChannels));
  const points = WINOGRAD_CROSSOVERS[isa];
  let t = points[points.length - 1][1];
  if (c <= points[0][0]) t = points[0][1];
  else {
    for (let i = 1; i < points.length; i++) {
      if (c > points[i][0]) continue;
      const [c0, d0] = points[i - 1], [c1, d1] = points[i];
      t = d0 + ((d1 - d0) * (c - c0)) / (c1 - c0);
      break;
    }
  }
  return Number.isFinite(outPixels) ? (t * outPixels) / (outPixels + SMALL_PLANE_PIXELS[isa]) : t;
}

/** Whether a convolution of this geometry and kernel can run on the sparse kernels. */
export function sparseConvFits(kernel: readonly [number, number], geometry: Conv2dGeometry): boolean {
  return geometry.strideH === 1 && geometry.strideW === 1 && geometry.padH < kernel[0] && geometry.padW < kernel[1];
}

/** The pattern of `mask` (nonzero = kept, NaN included) for a weight [outChannels, inChannels, kh, kw], and its density. */
export function convMaskPattern(mask: Float32Array, outChannels: number, inChannels: number, kh: number, kw: number): { pattern: ConvPattern; density: number } {
  const ckk = inChannels * kh * kw, size = outChannels * ckk;
  check(mask.length === size, () => `sparse conv: mask has ${mask.length} values, expected ${outChannels}x${inChannels}x${kh}x${kw}`);
  check(size < 2 ** 31, () => `sparse conv: a weight of ${size} entries is too large`);
  let nnz = 0;
  for (let i = 0; i < size; i++) if (mask[i] !== 0) nnz++;
  const rowPtr = new Int32Array(outChannels + 1), colIdx = new Int32Array(nnz), flat = new Int32Array(nnz);
  const tPtr = new Int32Array(inChannels + 1), tIdx = new Int32Array(nnz);
  const taps = kh * kw;
  let k = 0;
  for (let o = 0; o < outChannels; o++) {
    for (let c = 0; c < ckk; c++) {
      if (mask[o * ckk + c] === 0) continue;
      colIdx[k] = c;
      flat[k++] = o * ckk + c;
      tPtr[Math.floor(c / taps) + 1]++;
    }
    rowPtr[o + 1] = k;
  }
  for (let c = 0; c < inChannels; c++) tPtr[c + 1] += tPtr[c];
  const next = tPtr.slice(0, inChannels);
  for (let j = 0; j < nnz; j++) tIdx[next[Math.floor(colIdx[j] / taps)]++] = j;
  const pattern = { outChannels, inChannels, kh, kw, nnz, rowPtr, colIdx, tPtr, tIdx, flat };
  return { pattern, density: size ? nnz / size : 0 };
}

/**
 * y = act(conv2d(x, W) + b) with W given by its pattern and packed values `vals` [nnz] (a
 * tensor: its gradient is packed too); the same values as conv2d on the masked dense
 * weight up to float summation order. On the buffers of `ws` when one is given.
 */
export function sparseConv2d(
  x: Tensor, vals: Tensor, pattern: ConvPattern, bias: Tensor | null, geometry: Conv2dGeometry, activation: 'none' | 'relu', ws?: Workspace,
): Tensor {
  const { outChannels: cout, inChannels: cin, kh, kw } = pattern;
  check(x.shape.length === 4 && x.shape[1] === cin,
    () => `sparseConv2d: input must be [batch, ${cin}, height, width], got [${x.shape.join(', ')}]`);
  check(vals.size === pattern.nnz, () => `sparseConv2d: ${vals.size} packed values for a pattern of ${pattern.nnz} nonzeros`);
  check(bias === null || bias.size === cout, () => `sparseConv2d: bias has ${bias!.size} values, expected ${cout}`);
  check(sparseConvFits([kh, kw], geometry),
    () => `sparseConv2d: needs stride 1 and padding below the kernel size, got stride ${geometry.strideH}x${geometry.strideW}, padding ${geometry.padH}x${geometry.padW} for a ${kh}x${kw} kernel`);
  const [n, , h, w] = x.shape;
  const { padH, padW } = geometry;
  const oh = h + 2 * padH - kh + 1, ow = w + 2 * padW - kw + 1;
  check(oh >= 1 && ow >= 1, () => `sparseConv2d: a ${kh}x${kw} kernel with padding ${padH}x${padW} does not fit a ${h}x${w} input`);
  const be = getBackend();
  const relu = activation === 'relu';
  const inputs = bias ? [x, vals, bias] : [x, vals];
  const y = outputTensor([n, cout, oh, ow], ws, inputs);
  be.sparseConvForward(pattern, vals.data, x.data, y.data, bias ? bias.data : null, n, h, w, padH, padW, relu);
  if (willRecord(inputs)) {
    y.requiresGrad = true;
    y.parents = inputs;
    y.backwardFn = () => {
      const gy = y.grad!;
      // y.grad belongs to y and nobody reads it after this: mask it in place.
      if (relu) be.reluBackward(gy, y.data, gy, gy.length);
      if (bias?.requiresGrad) be.sumChannels(gy, bias.ensureGrad(), n, cout, oh * ow, true);
      if (vals.requiresGrad) be.sparseConvWeightGrad(pattern, x.data, gy, vals.ensureGrad(), n, h, w, padH, padW);
      if (x.requiresGrad) be.sparseConvInputGrad(pattern, vals.data, gy, x.ensureGrad(), n, h, w, padH, padW);
    };
  }
  return y;
}
