import { getBackend, panelColumns, type Backend, type SparseMode, type SparsePattern } from '../backend/index.js';
import { check } from '../core/errors.js';
import { Tensor, recordOp, scratchArray } from './tensor.js';

/**
 * Sparse fully connected layers: y = x·Wᵀ + b computed only at the nonzeros of W's mask
 * (forward, input gradient, weight gradient). The weight is a packed tensor, [nnz] in the
 * pattern's order, so its gradient and optimiser state are packed too and an optimiser
 * step touches only the nonzeros. Activations are transposed into [features, batch]
 * panels (Panels) so that each nonzero is a few vector FMAs over the batch; a chain of
 * sparse layers passes panels from one to the next and transposes only at its ends
 * (toPanels, fromPanels), each a recorded op with its gradient.
 */

/**
 * Below this mask density a masked Linear runs sparse (sparse mode 'auto'). Measured on a
 * 2-core AVX-512 machine as what the user waits for: whole LeNet-300-100 IMP levels (4,000
 * iterations of batch 60, validation + test every 100 in the background thread, scaled to
 * 50,000; s per level, dense / sparse, two interleaved runs): fc at 64% 58-69 / 83-91, 51%
 * 59-63 / 77-81, 41% 61-63 / 68-75, 33% 60-63 / 52, 26% 56-59 / 44-47, 21% 56 / 39. One
 * evaluation pass alone (15,000 samples, batch 1000, one thread, ms): 33% 84 / 80, 21%
 * 82 / 58. So 0.35, between the ladder's 41% and 33%.
 */
export const SPARSE_DENSITY_THRESHOLD = 0.35;

/**
 * A masked weight of at most this many entries runs sparse under 'auto' whatever its
 * density: it costs next to nothing either way, and an MLP whose layers all run sparse
 * compiles to the sparse-MLP program. LeNet's 1,000-weight output layer, pruned at half
 * the rate, stays above the density threshold at levels 5-9 (59% to 39%); with it sparse,
 * those levels' steps took 0.53 ms against 0.69-0.79 ms at 13.4% and 0.74-0.83 against
 * 0.88-1.07 at 32.8% (two interleaved runs each, 2 threads).
 */
export const SMALL_LAYER_WEIGHTS = 4096;

/**
 * The density below which a masked product inside a Transformer block (attention's in_proj
 * and out_proj, the feed-forward pair), which multiplies every token of the batch, runs
 * sparse under 'auto', by the product's smaller side. Measured as the whole training step
 * with every block weight at one density, sparse against dense, two threads on AVX-512
 * (docs/performance.md, 2026-12-05): char_transformer (d = 128) 0.86, 0.92–0.99,
 * 0.94–0.97, 0.97–0.98 and 1.00 of the dense step at 4.4, 6.9, 8.6, 10.7 and 13.4%;
 * text_transformer (d = 64), whose step is mostly its embedding and attention, 0.96–1.01
 * from 1 to 4.4% and 1.05–1.11 from 8.6%.
 */
export function sparseTokenLinearThreshold(inFeatures: number, outFeatures: number): number {
  return Math.min(inFeatures, outFeatures) >= 128 ? 0.1 : 0.03;
}

/**
 * Whether a masked weight of this density runs sparse under `mode` where its layer's
 * threshold is `threshold` (a convolution's sparseConvThreshold, a Conv1d's constant, a
 * Transformer block product's sparseTokenLinearThreshold).
 */
export function useSparseBelow(density: number, mode: SparseMode, threshold: number): boolean {
  return mode === 'on' || (mode === 'auto' && density < threshold);
}

/** Whether a masked weight of this density (and this many entries) runs sparse under `mode`. */
export function useSparse(density: number, mode: SparseMode, weights = Infinity): boolean {
  return mode === 'on' || (mode === 'auto' && (density < SPARSE_DENSITY_THRESHOLD || weights <= SMALL_LAYER_WEIGHTS));
}

/**
 * The backend's compressed pattern of `mask` (nonzero = kept) for a weight [rows, cols], and
 * its density; `reuse`, a pattern nothing will use again, may give it its memory
 * (Backend.sparsePattern).
 */
export function maskPattern(
  mask: Float32Array, rows: number, cols: number, be: Backend = getBackend(), reuse?: SparsePattern,
): { pattern: SparsePattern; density: number } {
  check(mask.length === rows * cols, () => `sparse: mask has ${mask.length} values, expected ${rows}x${cols}`);
  const pattern = be.sparsePattern(mask, rows, cols, reuse);
  return { pattern, density: rows * cols ? pattern.nnz / (rows * cols) : 0 };
}

/** The packed values of a dense weight at a pattern's nonzeros, [nnz]. */
export function packValues(pattern: { readonly flat: Int32Array; readonly nnz: number }, dense: Float32Array, out: Float32Array = new Float32Array(pattern.nnz)): Float32Array {
  const { flat } = pattern;
  for (let k = 0; k < flat.length; k++) out[k] = dense[flat[k]];
  return out;
}

/** Writes packed values into a dense array at the pattern's nonzeros (the other entries are left as they are). */
export function unpackValues(pattern: { readonly flat: Int32Array }, packed: Float32Array, dense: Float32Array): Float32Array {
  const { flat } = pattern;
  for (let k = 0; k < flat.length; k++) dense[flat[k]] = packed[k];
  return dense;
}

/** The batch rounded up to the kernels' column granularity (16). */
export function paddedBatch(n: number): number {
  return Math.max(16, (n + 15) & ~15);
}

/**
 * Activations [features, n] in panels of 64 batch columns (Backend.toPanels): the layout
 * of the sparse kernels. Columns n ≤ c < ld are zero; ld = paddedBatch(n).
 */
export class Panels extends Tensor {
  readonly ld: number;

  constructor(data: Float32Array, readonly features: number, readonly n: number) {
    const ld = paddedBatch(n);
    super(data, [features, panelColumns(ld)]);
    this.ld = ld;
  }
}

/** Panels for an op to overwrite (from the active BufferArena): columns from ld to the end of the last panel are never written by a kernel, so they are zeroed here. */
function emptyPanels(features: number, n: number): Panels {
  const ld = paddedBatch(n), cols = panelColumns(ld);
  const data = scratchArray(features * cols);
  if (cols > ld) data.fill(0);
  return new Panels(data, features, n);
}

/** x [n, features] → its panels. */
export function toPanels(x: Tensor): Panels {
  check(x.shape.length === 2, () => `toPanels: input must be rank 2 [batch, features], got shape [${x.shape.join(', ')}]`);
  const be = getBackend();
  const [n, features] = x.shape;
  const y = emptyPanels(features, n);
  be.toPanels(x.data, y.data, n, features, y.ld);
  recordOp(y, [x], () => be.fromPanels(y.grad!, x.ensureGrad(), n, features, y.ld, true));
  return y;
}

/** Panels → [n, features]. */
export function fromPanels(x: Panels): Tensor {
  const be = getBackend();
  const { n, features, ld } = x;
  const y = Tensor.empty([n, features]);
  be.fromPanels(x.data, y.data, n, features, ld, false);
  recordOp(y, [x], () => {
    if (x.grad === null) {
      be.toPanels(y.grad!, x.ensureGrad(), n, features, ld);
    } else {
      const t = scratchArray(x.size);
      be.toPanels(y.grad!, t, n, features, ld);
      addInto(x.grad, t);
    }
  });
  return y;
}

/**
 * y = act(x·Wᵀ + b) on panels, W [rows, cols] given by its pattern and packed values
 * `vals` [nnz] (a tensor: its gradient is packed too). Same values as `linear` on the
 * masked dense weight up to float summation order.
 */
export function sparseLinearPanels(x: Panels, vals: Tensor, pattern: SparsePattern, bias: Tensor | null, activation: 'none' | 'relu'): Panels {
  check(x.features === pattern.cols, () => `sparseLinear: weight has ${pattern.cols} inputs, input has ${x.features} features`);
  check(vals.size === pattern.nnz, () => `sparseLinear: ${vals.size} packed values for a pattern of ${pattern.nnz} nonzeros`);
  check(bias === null || bias.size === pattern.rows, () => `sparseLinear: bias has ${bias!.size} values, expected ${pattern.rows}`);
  const be = getBackend();
  const { n, ld } = x;
  const relu = activation === 'relu';
  const y = emptyPanels(pattern.rows, n);
  be.sparseForward(pattern, vals.data, x.data, y.data, bias ? bias.data : null, n, ld, relu);
  recordOp(y, bias ? [x, vals, bias] : [x, vals], () => {
    // y.grad belongs to y and nobody reads it after this: mask it in place.
    const gy = y.grad!;
    if (relu) be.reluBackward(gy, y.data, gy, gy.length);
    if (vals.requiresGrad || bias?.requiresGrad) {
      be.sparseWeightGrad(pattern, gy, x.data, vals.requiresGrad ? vals.ensureGrad() : null, bias?.requiresGrad ? bias.ensureGrad() : null, ld);
    }
    if (!x.requiresGrad) return;
    if (x.grad === null) {
      be.sparseInputGrad(pattern, vals.data, gy, x.ensureGrad(), ld);
    } else {
      const t = scratchArray(x.size);
      be.sparseInputGrad(pattern, vals.data, gy, t, ld);
      addInto(x.grad, t);
    }
  });
  return y;
}

/** One sparse layer on a row-major batch: toPanels, sparseLinearPanels, fromPanels. */
export function sparseLinear(x: Tensor, vals: Tensor, pattern: SparsePattern, bias: Tensor | null, activation: 'none' | 'relu'): Tensor {
  check(x.shape.length === 2, () => `linear: input must be rank 2 [batch, features], got shape [${x.shape.join(', ')}]`);
  return fromPanels(sparseLinearPanels(toPanels(x), vals, pattern, bias, activation));
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}
