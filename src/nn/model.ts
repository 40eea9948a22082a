import type { Rng } from '../core/rng.js';
import { LthError, check } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Layer } from './layers.js';

/** Parameter name -> values, e.g. 'fc1.weight' -> Float32Array. */
export type StateDict = Map<string, Float32Array>;

/**
 * A network as an ordered list of named layers. Parameter names are the ones
 * PyTorch gives ('fc1.weight', 'fc1.bias', ...), so tensors interoperate.
 */
export class Model {
  constructor(
    readonly name: string,
    readonly layers: ReadonlyArray<readonly [string, Layer]>,
  ) {}

  forward(x: Tensor, training: boolean): Tensor {
    for (const [, layer] of this.layers) x = layer.forward(x, training);
    return x;
  }

  namedParameters(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [layerName, layer] of this.layers) {
      for (const [pName, t] of layer.parameters()) out.push([`${layerName}.${pName}`, t]);
    }
    return out;
  }

  parameter(name: string): Tensor {
    const found = this.namedParameters().find(([n]) => n === name);
    if (!found) throw new LthError(`${this.name}: no parameter '${name}'`);
    return found[1];
  }

  /** Names of the weights that pruning may touch, in layer order ('fc1.weight', ...). */
  prunableNames(): string[] {
    return this.layers.filter(([, l]) => l.prunable).map(([n]) => `${n}.weight`);
  }

  /** The last layer: pruned at half the rate by the paper's convention. */
  outputLayerName(): string {
    return this.layers[this.layers.length - 1][0];
  }

  /** Draws fresh parameters (θ0) from the given random stream. */
  initialize(rng: Rng): void {
    for (const [, layer] of this.layers) layer.initialize(rng);
  }

  /** Restarts every seeded layer's random stream (dropout masks) from `seed`. */
  seed(seed: number): void {
    for (const [, layer] of this.layers) layer.seed?.(seed);
  }

  /** A copy of every parameter's values. */
  state(): StateDict {
    return new Map(this.namedParameters().map(([n, t]) => [n, Float32Array.from(t.data)]));
  }

  loadState(state: StateDict): void {
    for (const [name, t] of this.namedParameters()) {
      const src = state.get(name);
      check(src !== undefined, `${this.name}: state has no tensor '${name}'`);
      check(src.length === t.size, `${this.name}: tensor '${name}' has ${src.length} values, expected ${t.size}`);
      t.data.set(src);
    }
  }

  /** Attaches masks (1 keep, 0 pruned) to prunable weights and zeroes the pruned entries. */
  setMasks(masks: StateDict): void {
    for (const [name, mask] of masks) {
      const t = this.parameter(name);
      check(mask.length === t.size, `${this.name}: mask '${name}' has ${mask.length} values, expected ${t.size}`);
      t.mask = mask;
      for (let i = 0; i < t.size; i++) if (mask[i] === 0) t.data[i] = 0;
    }
  }
}
