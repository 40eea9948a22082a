import type { SparsePattern } from '../backend/backend.js';
import { check } from '../core/errors.js';

let gradEnabled = true;

/** Runs `fn` without recording the graph (evaluation passes). */
export function noGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Buffers recycled across passes whose tensors all die with the pass: the batches of an
 * evaluation, or a training step (forward, backward, optimiser step). Inside `run`,
 * `Tensor.empty`, `scratchArray` and the gradients of non-leaf tensors take the buffers
 * of the previous run in the same order (a fresh 1.2 MB Float32Array costs more in page
 * faults than the GEMM that fills it). Leaf tensors (parameters) never draw from it. A
 * tensor made inside `run` is valid until the next `run`.
 */
export class BufferArena {
  private readonly bufs: Float32Array[] = [];
  private next = 0;

  run<T>(fn: () => T): T {
    const outer = activeArena;
    activeArena = this;
    this.next = 0;
    try {
      return fn();
    } finally {
      activeArena = outer;
    }
  }

  take(n: number): Float32Array {
    const i = this.next++;
    if (this.bufs[i]?.length !== n) this.bufs[i] = new Float32Array(n);
    return this.bufs[i];
  }
}
let activeArena: BufferArena | null = null;

/** A buffer an op overwrites entirely before reading it: from the active BufferArena (stale contents), else fresh. */
export function scratchArray(n: number): Float32Array {
  return activeArena ? activeArena.take(n) : new Float32Array(n);
}

const zeroArrays = new Map<number, Float32Array>();
/** n zeros, shared and never written (a bias of none for kernels that take one). */
export function zeroArray(n: number): Float32Array {
  let z = zeroArrays.get(n);
  if (!z) zeroArrays.set(n, (z = new Float32Array(n)));
  return z;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * A float32 row-major array with an optional gradient, micrograd style: every op
 * creates its output together with the closure that back-propagates into its inputs.
 */
export class Tensor {
  grad: Float32Array | null = null;
  /** For parameters: 0 marks a pruned entry, kept exactly zero by the optimiser. */
  mask: Float32Array | null = null;
  /**
   * Set by the sparse fully connected op (tensor/sparse.ts) on a masked weight it computes
   * sparsely: the weight's values, gradient and optimiser state then live packed per
   * nonzero between steps (`.grad` is not used), and `.data` is brought up to date when
   * read.
   */
  get sparse(): SparseState | null {
    return this.sparseState;
  }
  private sparseState: SparseState | null = null;
  /** Set by ops when the graph is recorded. */
  backwardFn: (() => void) | null = null;
  parents: readonly Tensor[] = [];

  private readonly values: Float32Array;

  constructor(
    data: Float32Array,
    readonly shape: readonly number[],
    public requiresGrad = false,
  ) {
    this.values = data;
    check(data.length === sizeOf(shape),
      () => `Tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${sizeOf(shape)}`);
  }

  /**
   * Values that never change (a data set's samples): ops may cache what they derive from
   * them, e.g. the sparse op's transposed panels of an evaluation batch.
   */
  frozen = false;

  static frozenOf(data: Float32Array, shape: readonly number[]): Tensor {
    const t = new Tensor(data, shape);
    t.frozen = true;
    return t;
  }

  static zeros(shape: readonly number[], requiresGrad = false): Tensor {
    return new Tensor(new Float32Array(sizeOf(shape)), shape, requiresGrad);
  }

  /**
   * An op's output that the op overwrites entirely: from the active BufferArena (its
   * contents are stale values) when one runs, otherwise zero-filled.
   */
  static empty(shape: readonly number[]): Tensor {
    return new Tensor(scratchArray(sizeOf(shape)), shape);
  }

  /** The values, row-major. For a weight computed sparsely, reading them writes back its packed values first. */
  get data(): Float32Array {
    if (this.sparseState !== null) this.sparseState.syncDense();
    return this.values;
  }

  /**
   * From now on computes this weight sparsely on `pattern` (null: densely again), keeping
   * its values; a no-op when already on that pattern.
   */
  setSparse(pattern: SparsePattern | null): SparseState | null {
    if (this.sparseState?.pattern === pattern) return this.sparseState;
    this.sparseState?.syncDense();
    this.sparseState = pattern ? new SparseState(pattern, this.values) : null;
    return this.sparseState;
  }

  get size(): number {
    return this.values.length;
  }

  /** The gradient buffer, created zero-filled on first use (from the active BufferArena for an op's output). */
  ensureGrad(): Float32Array {
    if (!this.grad) {
      const n = this.values.length;
      this.grad = activeArena && this.parents.length ? activeArena.take(n).fill(0) : new Float32Array(n);
    }
    return this.grad;
  }

  /**
   * Back-propagates from this scalar: d(this)/d(this) = 1, then every recorded op in
   * reverse topological order. Gradients accumulate into `.grad`.
   */
  backward(): void {
    check(this.size === 1, `backward: only a scalar can start back-propagation, got shape [${this.shape.join(', ')}]`);
    const order: Tensor[] = [];
    const seen = new Set<Tensor>();
    const visit = (t: Tensor) => {
      if (seen.has(t)) return;
      seen.add(t);
      for (const p of t.parents) visit(p);
      order.push(t);
    };
    visit(this);
    this.ensureGrad()[0] = 1;
    for (let i = order.length - 1; i >= 0; i--) order[i].backwardFn?.();
    // Free the graph so activations can be collected.
    for (const t of order) {
      t.backwardFn = null;
      t.parents = [];
    }
  }
}

/**
 * A weight computed sparsely: the backend's pattern of its mask, and its values and
 * gradient packed per nonzero (pattern.flat order). Between optimiser steps the packed
 * values are the current ones; `Tensor.data` writes them back when read, and since the
 * caller may then write the dense array, the next packed use gathers them again.
 */
export class SparseState {
  readonly vals: Float32Array;
  readonly grad: Float32Array;
  /** The packed values are newer than the dense array. */
  private denseStale = false;
  /** The dense array may be newer than the packed values. */
  private valsStale = true;

  constructor(readonly pattern: SparsePattern, private readonly dense: Float32Array) {
    this.vals = new Float32Array(pattern.nnz);
    this.grad = new Float32Array(pattern.nnz);
  }

  /** The packed values for a kernel or an optimiser; `modified` says the caller will change them. */
  values(modified: boolean): Float32Array {
    if (this.valsStale) {
      const { flat } = this.pattern;
      for (let k = 0; k < flat.length; k++) this.vals[k] = this.dense[flat[k]];
      this.valsStale = false;
    }
    if (modified) this.denseStale = true;
    return this.vals;
  }

  /** Writes the packed values back into the dense array (a read of Tensor.data). */
  syncDense(): void {
    if (this.denseStale) {
      const { flat } = this.pattern;
      for (let k = 0; k < flat.length; k++) this.dense[flat[k]] = this.vals[k];
      this.denseStale = false;
    }
    this.valsStale = true;
  }
}
