import { getBackend } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import { panelColumns, type SparsePattern } from '../backend/backend.js';
import { Tensor, isGradEnabled, type SparseState } from './tensor.js';

/**
 * Sparse fully connected layers: y = x·Wᵀ + b computed only at the nonzeros of W's mask
 * (forward, input gradient, weight gradient), with the activations transposed to
 * [features, batch] panels inside the op so each nonzero is a few vector FMAs over the
 * batch. The backend's pattern of a mask is built once per mask object and cached; the
 * weight's values live packed between steps (Tensor.setSparse).
 */

/**
 * Below this mask density a masked Linear runs sparse (LTH_SPARSE=auto). Measured on this
 * project's 2-core AVX-512 machine as what the user waits for: whole LeNet-300-100 IMP
 * levels (4,000 iterations of batch 60, validation + test every 100 in the background
 * thread, scaled to 50,000; s per level, dense / sparse, two interleaved runs): fc at 64%
 * 58-69 / 83-91, 51% 59-63 / 77-81, 41% 61-63 / 68-75, 33% 60-63 / 52, 26% 56-59 / 44-47,
 * 21% 56 / 39. One evaluation pass alone (15,000 samples, batch 1000, one thread, ms):
 * 33% 84 / 80, 21% 82 / 58. So 0.35, between the ladder's 41% and 33%.
 */
export const SPARSE_DENSITY_THRESHOLD = 0.35;

interface CachedPattern {
  readonly backend: string;
  readonly pattern: SparsePattern;
  readonly density: number;
}

const patterns = new WeakMap<Float32Array, CachedPattern>();

/** The backend's compressed pattern of `mask` (nonzero = kept) for a weight [rows, cols]; cached per mask object. */
export function maskPattern(mask: Float32Array, rows: number, cols: number): { pattern: SparsePattern; density: number } {
  const be = getBackend();
  const hit = patterns.get(mask);
  if (hit && hit.backend === be.name && hit.pattern.rows === rows && hit.pattern.cols === cols) return hit;
  check(mask.length === rows * cols, () => `sparse: mask has ${mask.length} values, expected ${rows}x${cols}`);
  const pattern = be.sparsePattern(mask, rows, cols);
  const entry = { backend: be.name, pattern, density: rows * cols ? pattern.nnz / (rows * cols) : 0 };
  patterns.set(mask, entry);
  return entry;
}

export type SparseMode = 'auto' | 'on' | 'off';

/** LTH_SPARSE=auto|on|off (default auto), read at every call so tests can toggle it. */
export function sparseMode(): SparseMode {
  const v = process.env.LTH_SPARSE;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'on' || v === 'off') return v;
  throw new LthError(`LTH_SPARSE must be 'auto', 'on' or 'off', got '${v}'`);
}

/**
 * A masked weight of at most this many entries runs sparse under 'auto' whatever its
 * density: it costs next to nothing either way, and an MLP whose layers all run sparse
 * takes the fused step (training/fused-mlp.ts). LeNet's 1,000-weight output layer, pruned
 * at half the rate, stays above the density threshold at levels 5-9 (59% to 39%); with
 * it sparse, those levels' steps took 0.53 ms against 0.69-0.79 ms at 13.4% and 0.74-0.83
 * against 0.88-1.07 at 32.8% (two interleaved runs each, 2 threads).
 */
export const SMALL_LAYER_WEIGHTS = 4096;

/** Whether a masked weight of this density (and this many entries) runs sparse under `mode`. */
export function useSparse(density: number, mode: SparseMode = sparseMode(), weights = Infinity): boolean {
  return mode === 'on' || (mode === 'auto' && (density < SPARSE_DENSITY_THRESHOLD || weights <= SMALL_LAYER_WEIGHTS));
}

/** The batch rounded up to the kernels' column granularity (16). */
export function paddedBatch(n: number): number {
  return Math.max(16, (n + 15) & ~15);
}

/** The buffers of one sparse layer, reused across steps while no backward is pending. */
export class SparseWorkspace {
  private key = '';
  private bufs: Float32Array[] = [];
  /** A recorded forward whose backward has not run yet still owns the buffers. */
  busy = false;
  /** Counts get() calls: a buffer handed to another layer is valid while this is unchanged. */
  generation = 0;

  /** xT [in, ld], yT [out, ld], gyT [out, ld] and gxT [in, ld]. */
  get(ld: number, inF: number, outF: number): Float32Array[] {
    this.generation++;
    const key = `${ld},${inF},${outF}`;
    if (this.busy) return buffers(ld, inF, outF);
    if (key !== this.key) {
      this.bufs = buffers(ld, inF, outF);
      this.key = key;
    }
    return this.bufs;
  }
}

function buffers(ld: number, inF: number, outF: number): Float32Array[] {
  const cols = panelColumns(ld);
  return [new Float32Array(inF * cols), new Float32Array(outF * cols), new Float32Array(outF * cols), new Float32Array(inF * cols)];
}

/**
 * Transposed data handed between consecutive sparse layers, so a chain of them (an MLP)
 * stays in the [features, ld] layout: a layer's output → its transposed copy (valid while
 * the producing workspace has not been reused), and an input → the transposed gradient
 * its sparse consumer computed (taken by the producer's backward instead of `.grad`).
 */
interface Handoff {
  readonly data: Float32Array;
  readonly ld: number;
  readonly ws: SparseWorkspace;
  readonly generation: number;
}
const transposedOutput = new WeakMap<Tensor, Handoff>();
/** The panels of frozen inputs (evaluation batches), made once. */
const frozenPanels = new WeakMap<Tensor, { readonly data: Float32Array; readonly ld: number }>();
const transposedGrad = new WeakMap<Tensor, Float32Array>();

/**
 * y = x·Wᵀ + b (then ReLU), computed at the nonzeros of the weight's sparse state only.
 * x [n, in], weight [out, in], bias [out]. Same values as `linear` on the masked weight up
 * to float summation order; the weight gradient accumulates in `sparse.grad`. When x is
 * the output of another sparse layer, its gradient is handed back to that layer
 * transposed rather than accumulated in `x.grad`.
 */
export function sparseLinear(
  x: Tensor, weight: Tensor, bias: Tensor | null, activation: 'none' | 'relu', sparse: SparseState,
  ws: SparseWorkspace = new SparseWorkspace(),
): Tensor {
  check(x.shape.length === 2, () => `linear: input must be rank 2 [batch, features], got shape [${x.shape.join(', ')}]`);
  check(weight.shape.length === 2 && weight.shape[1] === x.shape[1],
    () => `linear: weight shape [${weight.shape.join(', ')}] does not match input features ${x.shape[1]}`);
  const [outF, inF] = weight.shape;
  const { pattern } = sparse;
  check(pattern.rows === outF && pattern.cols === inF, () => `sparseLinear: pattern is ${pattern.rows}x${pattern.cols}, weight is ${outF}x${inF}`);
  const be = getBackend();
  const n = x.shape[0];
  const ld = paddedBatch(n);
  const relu = activation === 'relu';
  const [xBuf, yT, gyT, gxT] = ws.get(ld, inF, outF);
  // The values this forward used, for the backward (the optimiser replaces the packed array's contents only after it).
  const vals = sparse.values(false);
  const handed = transposedOutput.get(x);
  const fromLayer = handed !== undefined && handed.ld === ld && handed.ws.generation === handed.generation;
  let xT = fromLayer ? handed.data : xBuf;
  if (!fromLayer && x.frozen) {
    let cached = frozenPanels.get(x);
    if (cached?.ld !== ld) {
      cached = { data: new Float32Array(xBuf.length), ld };
      be.toPanels(x.data, cached.data, n, inF, ld);
      frozenPanels.set(x, cached);
    }
    xT = cached.data;
  } else if (!fromLayer) {
    be.toPanels(x.data, xT, n, inF, ld);
  }
  be.sparseForward(pattern, vals, xT, yT, bias ? bias.data : null, n, ld, relu);
  const y = Tensor.empty([n, outF]);
  be.fromPanels(yT, y.data, n, outF, ld, false);
  transposedOutput.set(y, { data: yT, ld, ws, generation: ws.generation });
  const inputs = bias ? [x, weight, bias] : [x, weight];
  if (!(isGradEnabled() && inputs.some((t) => t.requiresGrad))) return y;
  ws.busy = true;
  y.requiresGrad = true;
  y.parents = inputs;
  y.backwardFn = () => {
    // gyT = the gradient of y, transposed: from y.grad and/or a sparse consumer's hand-off.
    const pending = transposedGrad.get(y);
    transposedGrad.delete(y);
    if (y.grad) {
      be.toPanels(y.grad, gyT, n, outF, ld);
      if (pending) for (let i = 0; i < gyT.length; i++) gyT[i] += pending[i];
    } else if (pending) {
      gyT.set(pending);
    } else {
      gyT.fill(0);
    }
    if (relu) be.reluBackward(gyT, yT, gyT, gyT.length);
    if (weight.requiresGrad || bias?.requiresGrad) {
      be.sparseWeightGrad(pattern, gyT, xT, weight.requiresGrad ? sparse.grad : null, bias?.requiresGrad ? bias.ensureGrad() : null, ld);
    }
    if (x.requiresGrad) {
      be.sparseInputGrad(pattern, vals, gyT, gxT, ld);
      if (fromLayer && !transposedGrad.has(x)) transposedGrad.set(x, gxT);
      else be.fromPanels(gxT, x.ensureGrad(), n, inF, ld, true);
    }
    ws.busy = false;
  };
  return y;
}

/**
 * The per-layer choice: when `weight` [out, in] carries a mask and LTH_SPARSE (with the
 * density threshold and the small-layer rule under 'auto') says sparse, marks the weight with its sparse state
 * (kept while the mask is the same) and returns it; otherwise clears that mark and
 * returns null (the layer then runs dense).
 */
export function chooseSparse(weight: Tensor, mode: SparseMode = sparseMode()): SparseState | null {
  const mask = weight.mask;
  if (!mask || mode === 'off' || weight.shape.length !== 2) return weight.setSparse(null);
  const { pattern, density } = maskPattern(mask, weight.shape[0], weight.shape[1]);
  return weight.setSparse(useSparse(density, mode, weight.size) ? pattern : null);
}

/** sparseLinear when `chooseSparse` says so, else null (the caller then runs the dense op). */
export function maybeSparseLinear(
  x: Tensor, weight: Tensor, bias: Tensor | null, activation: 'none' | 'relu', ws: SparseWorkspace,
): Tensor | null {
  const sparse = chooseSparse(weight);
  return sparse ? sparseLinear(x, weight, bias, activation, sparse, ws) : null;
}

/** A parameter's gradient as a dense array: `.grad`, or its packed sparse gradient scattered (null if neither). */
export function denseGrad(t: Tensor): Float32Array | null {
  if (!t.sparse) return t.grad;
  const g = t.grad ? Float32Array.from(t.grad) : new Float32Array(t.size);
  const { flat } = t.sparse.pattern;
  for (let k = 0; k < flat.length; k++) g[flat[k]] += t.sparse.grad[k];
  return g;
}
