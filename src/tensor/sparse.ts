import { getBackend } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import { Tensor, isGradEnabled } from './tensor.js';

/**
 * Sparse fully connected layers: y = x·Wᵀ + b computed only at the nonzeros of W's mask
 * (forward, input gradient, weight gradient), with the activations transposed to
 * [features, batch] inside the op so each nonzero is one vector FMA over the batch.
 * The weight stays dense (its Tensor data); the compressed index (CSR and CSC of the
 * mask) is built once per mask object and cached.
 */

/**
 * Below this mask density a masked Linear runs sparse (LTH_SPARSE=auto). Provisional, from a
 * loaded 2-core machine (fc1 784x300 sparse wins at 5%, loses at 10%; fc2 300x100 wins at
 * 10%, loses at 20%): the sddmm and transpose kernels are not yet tuned. Measured on
 * LeNet-300-100 shapes (784x300, 300x100, 100x10) at batch 60 and 1000 on a 2-core
 * AVX-512 machine: see bench/sparse.ts and native/README.md.
 */
export const SPARSE_DENSITY_THRESHOLD = 0.1;

/** The compressed index of one mask of a weight [rows, cols]. */
export interface SparseIndex {
  readonly mask: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly nnz: number;
  readonly density: number;
  /** CSR: row r's nonzeros are colIdx[rowPtr[r] .. rowPtr[r+1]). */
  readonly rowPtr: Int32Array;
  readonly colIdx: Int32Array;
  /** CSC: column c's nonzeros are rowIdx[colPtr[c] .. colPtr[c+1]). */
  readonly colPtr: Int32Array;
  readonly rowIdx: Int32Array;
  /** Flat indices r·cols + c of the nonzeros, in CSR order (for the optimiser). */
  readonly flat: Int32Array;
}

const cache = new WeakMap<Float32Array, SparseIndex>();

/** The compressed index of `mask` (nonzero = kept) for a weight [rows, cols]; cached per mask object. */
export function sparseIndex(mask: Float32Array, rows: number, cols: number): SparseIndex {
  const hit = cache.get(mask);
  if (hit && hit.rows === rows && hit.cols === cols) return hit;
  check(mask.length === rows * cols, () => `sparseIndex: mask has ${mask.length} values, expected ${rows}x${cols}`);
  const rowPtr = new Int32Array(rows + 1), colPtr = new Int32Array(cols + 1);
  let nnz = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (mask[r * cols + c] !== 0) {
        nnz++;
        colPtr[c + 1]++;
      }
    }
    rowPtr[r + 1] = nnz;
  }
  for (let c = 0; c < cols; c++) colPtr[c + 1] += colPtr[c];
  const colIdx = new Int32Array(nnz), rowIdx = new Int32Array(nnz), flat = new Int32Array(nnz);
  const fill = colPtr.slice(0, cols);
  for (let r = 0, k = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (mask[r * cols + c] !== 0) {
        colIdx[k] = c;
        flat[k++] = r * cols + c;
        rowIdx[fill[c]++] = r;
      }
    }
  }
  const idx: SparseIndex = { mask, rows, cols, nnz, density: rows * cols ? nnz / (rows * cols) : 0, rowPtr, colIdx, colPtr, rowIdx, flat };
  cache.set(mask, idx);
  return idx;
}

export type SparseMode = 'auto' | 'on' | 'off';

/** LTH_SPARSE=auto|on|off (default auto), read at every call so tests can toggle it. */
export function sparseMode(): SparseMode {
  const v = process.env.LTH_SPARSE;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'on' || v === 'off') return v;
  throw new LthError(`LTH_SPARSE must be 'auto', 'on' or 'off', got '${v}'`);
}

/** Whether a masked weight of this density runs sparse under `mode`. */
export function useSparse(density: number, mode: SparseMode = sparseMode()): boolean {
  return mode === 'on' || (mode === 'auto' && density < SPARSE_DENSITY_THRESHOLD);
}

/** Transposed-activation buffers of one layer, reused across steps while no backward is pending. */
export class SparseWorkspace {
  private ld = -1;
  private bufs: Float32Array[] = [];
  /** A recorded forward whose backward has not run yet still owns the buffers. */
  busy = false;

  /** Four buffers (xT [in, ld], yT [out, ld], gyT [out, ld], gxT [in, ld]) for this ld. */
  get(ld: number, inF: number, outF: number): Float32Array[] {
    if (this.busy) return fresh(ld, inF, outF);
    if (ld !== this.ld || this.bufs[0].length !== inF * ld || this.bufs[1].length !== outF * ld) {
      this.bufs = fresh(ld, inF, outF);
      this.ld = ld;
    }
    return this.bufs;
  }
}

function fresh(ld: number, inF: number, outF: number): Float32Array[] {
  return [new Float32Array(inF * ld), new Float32Array(outF * ld), new Float32Array(outF * ld), new Float32Array(inF * ld)];
}

/**
 * y = x·Wᵀ + b (then ReLU), computed at the nonzeros of `idx` only. x [n, in], weight
 * [out, in] whose entries outside the mask are zero, bias [out]. Same values as `linear`
 * up to float summation order.
 */
export function sparseLinear(
  x: Tensor, weight: Tensor, bias: Tensor | null, activation: 'none' | 'relu', idx: SparseIndex,
  ws: SparseWorkspace = new SparseWorkspace(),
): Tensor {
  check(x.shape.length === 2, () => `linear: input must be rank 2 [batch, features], got shape [${x.shape.join(', ')}]`);
  check(weight.shape.length === 2 && weight.shape[1] === x.shape[1],
    () => `linear: weight shape [${weight.shape.join(', ')}] does not match input features ${x.shape[1]}`);
  const [outF, inF] = weight.shape;
  check(idx.rows === outF && idx.cols === inF, () => `sparseLinear: index is ${idx.rows}x${idx.cols}, weight is ${outF}x${inF}`);
  const be = getBackend();
  const n = x.shape[0];
  const ld = Math.max(16, (n + 15) & ~15);
  const relu = activation === 'relu';
  const [xT, yT, gyT, gxT] = ws.get(ld, inF, outF);
  be.transpose(x.data, xT, n, inF, inF, ld, false);
  be.spmm(weight.data, idx.rowPtr, idx.colIdx, inF, 1, xT, yT, bias ? bias.data : null, outF, ld, ld, false, relu);
  const y = Tensor.zeros([n, outF]);
  be.transpose(yT, y.data, outF, n, ld, outF, false);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  if (!(isGradEnabled() && inputs.some((t) => t.requiresGrad))) return y;
  ws.busy = true;
  y.requiresGrad = true;
  y.parents = inputs;
  y.backwardFn = () => {
    let gy = y.grad!;
    if (relu) {
      const masked = new Float32Array(gy.length);
      be.reluBackward(gy, y.data, masked, gy.length);
      gy = masked;
    }
    if (bias?.requiresGrad) be.sumRows(gy, bias.ensureGrad(), n, outF, true);
    if (weight.requiresGrad || x.requiresGrad) be.transpose(gy, gyT, n, outF, outF, ld, false);
    if (weight.requiresGrad) be.sddmm(gyT, idx.rowPtr, idx.colIdx, inF, 1, xT, weight.ensureGrad(), outF, ld, ld);
    if (x.requiresGrad) {
      be.spmm(weight.data, idx.colPtr, idx.rowIdx, 1, inF, gyT, gxT, null, inF, ld, ld, false, false);
      be.transpose(gxT, x.ensureGrad(), inF, n, ld, inF, true);
    }
    ws.busy = false;
  };
  return y;
}

/**
 * The per-layer choice: when `weight` carries a mask and LTH_SPARSE (with the density
 * threshold under 'auto') says sparse, computes the layer sparsely, marks the weight for
 * sparse optimiser updates and returns y; otherwise clears that mark and returns null
 * (the caller then runs the dense op).
 */
export function maybeSparseLinear(
  x: Tensor, weight: Tensor, bias: Tensor | null, activation: 'none' | 'relu', ws: SparseWorkspace,
): Tensor | null {
  const mask = weight.mask;
  const mode = sparseMode();
  if (!mask || mode === 'off' || weight.shape.length !== 2) {
    weight.sparse = null;
    return null;
  }
  const idx = sparseIndex(mask, weight.shape[0], weight.shape[1]);
  if (!useSparse(idx.density, mode)) {
    weight.sparse = null;
    return null;
  }
  weight.sparse = idx;
  return sparseLinear(x, weight, bias, activation, idx, ws);
}
