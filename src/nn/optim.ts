import { getBackend } from '../backend/index.js';
import { check } from '../core/errors.js';
import type { SparsePattern, UpdateRule } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

export interface Optimizer {
  /** Applies one update from the accumulated gradients, then zeroes them (the kernels do both in one pass). */
  step(): void;
  /**
   * Hands the next updates to a backend call that applies them itself
   * (Backend.sparseMlpStep): the rule of the next update (Adam's step count as step()
   * would advance it; the backend advances it by one a step), the state arrays of each of
   * `params` ([m, v] or [momentum buffer]; packed per nonzero for a weight computed
   * sparsely), and `applied`, to be called with the number of updates the call made. The
   * caller does not call step() for them. Optional: an optimiser without it is stepped
   * after each fused step instead.
   */
  handOff?(params: readonly Tensor[]): HandOff;
}

export interface HandOff {
  readonly rule: UpdateRule;
  readonly state: Float32Array[][];
  applied(updates: number): void;
}

/** Each of `params`' state, for Optimizer.handOff: packed for a sparse weight, dense otherwise. */
function stateOf(all: readonly Tensor[], slots: readonly SlotState[], params: readonly Tensor[], who: string): Float32Array[][] {
  return params.map((p) => {
    const i = all.indexOf(p);
    check(i >= 0, `${who}: a parameter handed off is not one of this optimiser's`);
    return p.sparse ? slots[i].forSparse(p.sparse.pattern) : slots[i].forDense();
  });
}

/**
 * Per-parameter optimiser state that follows how the parameter is computed: dense arrays
 * for a dense parameter, packed per nonzero (the pattern's order) for a weight computed
 * sparsely, so a sparse step touches only the nonzeros. Moving between the two keeps the
 * values (they are gathered or scattered at the pattern's flat indices).
 */
class SlotState {
  private packedFor: SparsePattern | null = null;
  private packed: Float32Array[] = [];

  constructor(private readonly dense: Float32Array[]) {}

  /** The state arrays for a dense step. */
  forDense(): Float32Array[] {
    this.unpack();
    return this.dense;
  }

  /** The state arrays for a sparse step on `pattern`. */
  forSparse(pattern: SparsePattern): Float32Array[] {
    if (this.packedFor !== pattern) {
      this.unpack();
      this.packed = this.dense.map((d) => {
        const p = new Float32Array(pattern.nnz);
        for (let k = 0; k < pattern.nnz; k++) p[k] = d[pattern.flat[k]];
        return p;
      });
      this.packedFor = pattern;
    }
    return this.packed;
  }

  private unpack(): void {
    const pattern = this.packedFor;
    if (!pattern) return;
    this.dense.forEach((d, i) => {
      for (let k = 0; k < pattern.nnz; k++) d[pattern.flat[k]] = this.packed[i][k];
    });
    this.packedFor = null;
    this.packed = [];
  }
}

/** Adam with PyTorch's update rule. Masked entries stay exactly zero (and so do their moments). */
export class Adam implements Optimizer {
  private readonly state: SlotState[];
  private t = 0;

  constructor(
    private readonly params: Tensor[],
    private readonly lr: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    check(lr > 0 && Number.isFinite(lr), `adam: learning rate must be a positive number, got ${lr}`);
    this.state = params.map((p) => new SlotState([new Float32Array(p.size), new Float32Array(p.size)]));
  }

  step(): void {
    this.t++;
    const be = getBackend();
    this.params.forEach((p, i) => {
      // A weight computed sparsely (tensor/sparse.ts): the dense update on its packed values, gradient and moments.
      const sp = p.sparse;
      if (sp) {
        const [m, v] = this.state[i].forSparse(sp.pattern);
        be.adam(sp.values(true), sp.grad, m, v, null, sp.pattern.nnz, this.lr, this.beta1, this.beta2, this.eps, this.t);
        return;
      }
      const [m, v] = this.state[i].forDense();
      be.adam(p.data, p.ensureGrad(), m, v, p.mask, p.size, this.lr, this.beta1, this.beta2, this.eps, this.t);
    });
  }

  handOff(params: readonly Tensor[]): HandOff {
    const rule: UpdateRule = { kind: 'adam', lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, step: this.t + 1 };
    return { rule, state: stateOf(this.params, this.state, params, 'adam'), applied: (updates) => { this.t += updates; } };
  }
}

/** SGD with momentum and (coupled, PyTorch-style) weight decay. */
export class Sgd implements Optimizer {
  private readonly state: SlotState[];

  constructor(
    private readonly params: Tensor[],
    public lr: number,
    private readonly momentum = 0,
    private readonly weightDecay = 0,
  ) {
    check(lr > 0 && Number.isFinite(lr), `sgd: learning rate must be a positive number, got ${lr}`);
    check(momentum >= 0 && momentum < 1, `sgd: momentum must be in [0, 1), got ${momentum}`);
    check(weightDecay >= 0, `sgd: weight decay must be >= 0, got ${weightDecay}`);
    this.state = params.map((p) => new SlotState([new Float32Array(p.size)]));
  }

  step(): void {
    const be = getBackend();
    this.params.forEach((p, i) => {
      const sp = p.sparse;
      if (sp) {
        const [buf] = this.state[i].forSparse(sp.pattern);
        be.sgd(sp.values(true), sp.grad, buf, null, sp.pattern.nnz, this.lr, this.momentum, this.weightDecay);
        return;
      }
      const [buf] = this.state[i].forDense();
      be.sgd(p.data, p.ensureGrad(), buf, p.mask, p.size, this.lr, this.momentum, this.weightDecay);
    });
  }

  handOff(params: readonly Tensor[]): HandOff {
    const rule: UpdateRule = { kind: 'sgd', lr: this.lr, momentum: this.momentum, weightDecay: this.weightDecay };
    return { rule, state: stateOf(this.params, this.state, params, 'sgd'), applied: () => {} };
  }
}
