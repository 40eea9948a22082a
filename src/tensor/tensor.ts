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
   * Set by the sparse fully connected op (tensor/sparse.ts) on a masked weight it computed
   * sparsely. Its gradient then accumulates in `sparse.grad`, packed per nonzero of the
   * pattern (`.grad` is not used), and the optimiser updates only those entries.
   */
  sparse: SparseState | null = null;
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

  get size(): number {
    return this.data.length;
  }

  /** The gradient buffer, created zero-filled on first use. */
  ensureGrad(): Float32Array {
    if (!this.grad) this.grad = new Float32Array(this.data.length);
    return this.grad;
  }

  zeroGrad(): void {
    this.grad?.fill(0);
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

/** A weight computed sparsely: the mask it was compressed from, its pattern, its packed gradient. */
export interface SparseState {
  readonly mask: Float32Array;
  readonly pattern: SparsePattern;
  /** The gradient at the pattern's nonzeros, in its packed order (pattern.flat). */
  readonly grad: Float32Array;
}
