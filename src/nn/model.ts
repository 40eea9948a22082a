import { LthError } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Sequential, type Module, type ModuleDesc } from './module.js';

export type { StateDict } from './module.js';

/** A prunable weight as pruning strategies see it. */
export interface PrunableLayer {
  /** The weight's name, e.g. 'fc1.weight' or 'conv2.weight'. */
  readonly name: string;
  /** The module type that owns it ('linear', 'conv2d', ...). */
  readonly kind: string;
  readonly shape: readonly number[];
  /** The network's last prunable weight (the paper prunes it at half the rate). */
  readonly output: boolean;
}

/**
 * A named network: a Sequential tree of modules whose parameter and buffer names are the
 * ones PyTorch gives ('fc1.weight', 'fc1.bias', ...), so tensors interoperate.
 */
export class Model extends Sequential {
  constructor(readonly name: string, layers: ReadonlyArray<readonly [string, Module]>) {
    super(layers);
  }

  override describe(): ModuleDesc {
    return { ...super.describe(), type: 'model', name: this.name };
  }

  parameter(name: string): Tensor {
    const found = this.namedParameters().find(([n]) => n === name);
    if (!found) throw new LthError(`${this.name}: no parameter '${name}'`);
    return found[1];
  }

  /** The prunable weights in parameter order, with their module type and shape. */
  prunableLayers(): PrunableLayer[] {
    const out: Array<Omit<PrunableLayer, 'output'>> = [];
    for (const [path, m] of this.namedModules()) {
      const params = new Map(m.namedParameters());
      for (const local of m.prunable()) {
        out.push({ name: path ? `${path}.${local}` : local, kind: m.describe().type, shape: params.get(local)!.shape });
      }
    }
    return out.map((l, i) => ({ ...l, output: i === out.length - 1 }));
  }

  /** Names of the weights that pruning may touch, in parameter order ('fc1.weight', ...). */
  prunableNames(): string[] {
    return this.prunableLayers().map((l) => l.name);
  }

  /** The name of the last prunable weight: pruned at half the rate by the paper's convention. */
  outputWeightName(): string {
    const names = this.prunableNames();
    if (names.length === 0) throw new LthError(`${this.name}: no prunable weight`);
    return names[names.length - 1];
  }
}
