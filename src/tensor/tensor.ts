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

  /** The floats of every buffer this arena holds: what a run of it took. */
  floats(): number {
    return this.bufs.reduce((a, b) => a + b.length, 0);
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
  /** Set by ops when the graph is recorded. */
  backwardFn: (() => void) | null = null;
  parents: readonly Tensor[] = [];

  constructor(
    readonly data: Float32Array,
    readonly shape: readonly number[],
    public requiresGrad = false,
  ) {
    check(data.length === sizeOf(shape),
      () => `Tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${sizeOf(shape)}`);
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

  get size(): number {
    return this.data.length;
  }

  /** The gradient buffer, created zero-filled on first use (from the active BufferArena for an op's output). */
  ensureGrad(): Float32Array {
    if (!this.grad) {
      const n = this.data.length;
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
