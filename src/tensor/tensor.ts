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

/** Whether an op on `inputs` is recorded (recordOp): gradients are on and an input needs one. */
export function willRecord(inputs: readonly Tensor[]): boolean {
  return gradEnabled && inputs.some((t) => t.requiresGrad);
}

/**
 * Records `out` as computed from `inputs` by the op whose `backward` adds to the inputs'
 * gradients, when willRecord(inputs); returns `out`.
 */
export function recordOp(out: Tensor, inputs: Tensor[], backward: () => void): Tensor {
  if (willRecord(inputs)) {
    out.requiresGrad = true;
    out.parents = inputs;
    out.backwardFn = backward;
  }
  return out;
}

/** A tensor's shape as error messages print it: [n, c, h, w]. */
export const shapeStr = (t: Tensor): string => `[${t.shape.join(', ')}]`;

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

/** scratchArray's bytes: n of them, on a Float32Array of the arena's, stale contents. */
export function scratchBytes(n: number): Uint8Array {
  const f = scratchArray(Math.ceil(n / 4));
  return new Uint8Array(f.buffer, f.byteOffset, n);
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
  private gradBuf: Float32Array | null = null;
  /** Whether `grad` holds stale values that stand for zeros (see attachStaleGrad). */
  private gradStale = false;
  /**
   * Whether `grad` holds zeros that no one has taken for writing since (see markGradZero):
   * the first op to reach it through gradSink may then overwrite it instead of adding.
   */
  private gradZero = false;
  /** Set by ops when the graph is recorded. */
  backwardFn: (() => void) | null = null;
  parents: readonly Tensor[] = [];
  /**
   * During backward(): how many inputs of the recorded ops it runs are this tensor. An op
   * whose backward takes over its input's producer's (conv3x3ThroughConv2d) may do so only
   * when it is the one reader.
   */
  readers = 0;

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

  /**
   * The gradient (null before any reached this tensor). Whoever reads it may write to it,
   * so reading it ends what markGradZero said.
   */
  get grad(): Float32Array | null {
    this.gradZero = false;
    return this.gradBuf;
  }

  set grad(g: Float32Array | null) {
    this.gradBuf = g;
    this.gradZero = false;
  }

  /** The gradient buffer, created zero-filled on first use (from the active BufferArena for an op's output). */
  ensureGrad(): Float32Array {
    this.gradZero = false;
    if (this.gradStale) {
      this.gradStale = false;
      this.gradBuf?.fill(0);
    }
    if (!this.gradBuf) {
      const n = this.data.length;
      this.gradBuf = activeArena && this.parents.length ? activeArena.take(n).fill(0) : new Float32Array(n);
    }
    return this.gradBuf;
  }

  /**
   * Says that the gradient buffer holds zeros (an optimiser's step has just zeroed it), so
   * that the first op to reach it through gradSink overwrites it: a weight gradient's
   * product then writes its result without reading the zeros first. Reading `grad` or
   * ensureGrad ends it.
   */
  markGradZero(): void {
    check(this.gradBuf !== null, 'markGradZero: the tensor has no gradient buffer');
    this.gradZero = true;
    this.gradStale = false;
  }

  /**
   * Makes `buf` the gradient without zeroing it (a buffer kept from an earlier step): the
   * first op to reach it through gradSink overwrites it, ensureGrad zeroes it first, and
   * backward() zeroes it before this tensor's own backward if no op has reached it.
   */
  attachStaleGrad(buf: Float32Array): void {
    check(buf.length === this.size, () => `attachStaleGrad: the buffer has ${buf.length} values, the tensor ${this.size}`);
    this.grad = buf;
    this.gradStale = true;
  }

  /**
   * The gradient buffer for an op that can write all of it: `overwrite` is true when no
   * gradient has reached this tensor yet, and the op must then set every entry (the buffer
   * may hold stale values: it is not zeroed); false when the op must add to it.
   */
  gradSink(): { grad: Float32Array; overwrite: boolean } {
    const fresh = this.gradStale || this.gradZero;
    this.gradStale = false;
    this.gradZero = false;
    if (this.gradBuf) return { grad: this.gradBuf, overwrite: fresh };
    const n = this.data.length;
    this.gradBuf = activeArena && this.parents.length ? activeArena.take(n) : new Float32Array(n);
    return { grad: this.gradBuf, overwrite: true };
  }

  /**
   * Says that no op will write this tensor's gradient: one that reads it took over the
   * backward pass of the op that made it (conv3x3ThroughConv2d), so backward() need not zero
   * the buffer first. What `grad` then holds is not this tensor's gradient.
   */
  skipGrad(): void {
    this.gradStale = false;
    this.gradZero = false;
  }

  /**
   * Adds g (this tensor's size) to its gradient. When no gradient has reached it yet, g is
   * copied in, with no zeroing pass before it (a -0 stays -0, which 0 + g would make +0).
   */
  addGrad(g: Float32Array): void {
    const { grad, overwrite } = this.gradSink();
    if (overwrite) {
      grad.set(g);
      return;
    }
    for (let i = 0; i < grad.length; i++) grad[i] += g[i];
  }

  /**
   * Adds g (this tensor's size) to its gradient, for an op whose input's gradient is its
   * output's reshaped (flatten, reshape): when no gradient has reached this tensor yet, g
   * itself becomes its gradient, without a copy, and g's owner must not write it again.
   * A leaf copies g in (its gradient outlives the pass; g may be an arena's).
   */
  passGrad(g: Float32Array): void {
    if (this.parents.length > 0 && (this.gradBuf === null || this.gradStale)) {
      this.gradBuf = g;
      this.gradStale = false;
      this.gradZero = false;
      return;
    }
    this.addGrad(g);
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
    for (const t of order) t.readers = 0;
    for (const t of order) for (const p of t.parents) p.readers++;
    this.ensureGrad()[0] = 1;
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      if (t.gradStale) t.ensureGrad();
      t.backwardFn?.();
    }
    // Free the graph so activations can be collected.
    for (const t of order) {
      t.backwardFn = null;
      t.parents = [];
    }
  }
}
