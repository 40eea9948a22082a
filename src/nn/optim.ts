import { getBackend } from '../backend/index.js';
import { check } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface Optimizer {
  /** Applies one update from the accumulated gradients, then zeroes them. */
  step(): void;
}

/** Adam with PyTorch's update rule. Masked entries stay exactly zero (and so do their moments). */
export class Adam implements Optimizer {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;

  constructor(
    private readonly params: Tensor[],
    private readonly lr: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    check(lr > 0 && Number.isFinite(lr), `adam: learning rate must be a positive number, got ${lr}`);
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
  }

  step(): void {
    this.t++;
    const be = getBackend();
    this.params.forEach((p, i) => {
      // A weight computed sparsely (tensor/sparse.ts): update, and zero the gradient, at the nonzeros only.
      const sp = p.sparse;
      if (sp && sp.mask === p.mask) {
        be.adamSparse(p.data, p.ensureGrad(), this.m[i], this.v[i], sp.flat, sp.nnz, this.lr, this.beta1, this.beta2, this.eps, this.t);
        return;
      }
      be.adam(p.data, p.ensureGrad(), this.m[i], this.v[i], p.mask, p.size, this.lr, this.beta1, this.beta2, this.eps, this.t);
      p.zeroGrad();
    });
  }
}

/** SGD with momentum and (coupled, PyTorch-style) weight decay. */
export class Sgd implements Optimizer {
  private readonly buf: Float32Array[];

  constructor(
    private readonly params: Tensor[],
    public lr: number,
    private readonly momentum = 0,
    private readonly weightDecay = 0,
  ) {
    check(lr > 0 && Number.isFinite(lr), `sgd: learning rate must be a positive number, got ${lr}`);
    check(momentum >= 0 && momentum < 1, `sgd: momentum must be in [0, 1), got ${momentum}`);
    check(weightDecay >= 0, `sgd: weight decay must be >= 0, got ${weightDecay}`);
    this.buf = params.map((p) => new Float32Array(p.size));
  }

  step(): void {
    const be = getBackend();
    this.params.forEach((p, i) => {
      const sp = p.sparse;
      if (sp && sp.mask === p.mask) {
        be.sgdSparse(p.data, p.ensureGrad(), this.buf[i], sp.flat, sp.nnz, this.lr, this.momentum, this.weightDecay);
        return;
      }
      be.sgd(p.data, p.ensureGrad(), this.buf[i], p.mask, p.size, this.lr, this.momentum, this.weightDecay);
      p.zeroGrad();
    });
  }
}
