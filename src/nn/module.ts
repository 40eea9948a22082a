import { LthError, check } from '../core/errors.js';
import type { Rng, RngState } from '../core/rng.js';
import type { Tensor } from '../tensor/tensor.js';

/** Tensor name -> values, e.g. 'fc1.weight' -> Float32Array: parameters and buffers, PyTorch's names. */
export type StateDict = Map<string, Float32Array>;

/**
 * A module's description: plain JSON from which `buildModule` (nn/build.ts) makes the same
 * module again, in another thread or process. `type` names the module class.
 */
export interface ModuleDesc {
  readonly type: string;
  readonly [key: string]: unknown;
}

/**
 * A node of a network, as PyTorch's nn.Module: named parameters (what the optimiser
 * trains), named buffers (state that is not trained, e.g. batch-norm running statistics)
 * and named child modules, in registration order; a training/evaluation mode that only
 * the modules that care read (dropout, batch norm). Names are dotted paths
 * ('fc1.weight', 'block1.bn.running_mean'), so tensors interoperate with PyTorch.
 */
export abstract class Module {
  /** Training mode (true) or evaluation mode: set for the whole tree by train(). */
  training = true;
  private readonly ownParams: Array<[string, Tensor]> = [];
  private readonly ownBuffers: Array<[string, Tensor]> = [];
  private readonly ownChildren: Array<[string, Module]> = [];

  abstract forward(x: Tensor): Tensor;

  /** The description `buildModule` rebuilds this module from (fresh parameters). */
  abstract describe(): ModuleDesc;

  /**
   * For a module with weights of its own that the FLOP count (nn/flops.ts) cannot see from
   * outside (not those of Linear or Conv2d children, which it counts itself): the forward
   * multiply-accumulates of each of them (local names) for one sample, given that sample's
   * input and output.
   */
  weightMacs?(x: Tensor, y: Tensor): Array<[string, number]>;

  /**
   * This module's forward and then `next`'s as one function, where the pair runs faster as
   * one op than as two (a 3×3 convolution and the 2×2 max pooling after it), with the same
   * results; undefined where it does not. A Sequential runs such pairs through it.
   */
  fusedWith?(next: Module): ((x: Tensor) => Tensor) | undefined;

  /** Local names of this module's own parameters that pruning may touch ('weight'). */
  prunable(): readonly string[] {
    return [];
  }

  /** Draws this module's own parameters from their initial distribution; the default initialises the children in order. */
  initialize(rng: Rng): void {
    for (const [, c] of this.ownChildren) c.initialize(rng);
  }

  /** Restarts the random streams of the tree's seeded modules (dropout masks) from `seed`. */
  seed(seed: number): void {
    for (const [, c] of this.ownChildren) c.seed(seed);
  }

  /** This module's own random stream's position (not its children's), or null when it draws none. */
  ownRandomState(): RngState | null {
    return null;
  }

  /** Moves this module's own random stream to `state` (only modules that draw have one). */
  loadOwnRandomState(_state: RngState): void {
    throw new LthError(`${this.describe().type}: has no random stream`);
  }

  /**
   * The positions of the tree's random streams (dropout masks) by module path: with the
   * parameters, what training carries from one step to the next, so what a checkpoint keeps.
   * Empty for a model that draws nothing.
   */
  randomState(): Record<string, RngState> {
    const out: Record<string, RngState> = {};
    for (const [p, m] of this.namedModules()) {
      const s = m.ownRandomState();
      if (s) out[p] = s;
    }
    return out;
  }

  /** Moves every random stream of the tree to where randomState() found it; every stream must be named, and only those. */
  loadRandomState(state: Readonly<Record<string, RngState>>, what = 'random state'): void {
    const streams = this.namedModules().filter(([, m]) => m.ownRandomState() !== null);
    const names = new Set(streams.map(([p]) => p));
    const missing = [...names].filter((p) => !(p in state)), unexpected = Object.keys(state).filter((p) => !names.has(p));
    if (missing.length || unexpected.length) {
      throw new LthError(`${what}: ${[missing.length ? `missing ${missing.join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''].filter(Boolean).join('; ')}`);
    }
    for (const [p, m] of streams) m.loadOwnRandomState(state[p]);
  }

  protected registerParameter(name: string, t: Tensor): Tensor {
    this.ownParams.push([name, t]);
    return t;
  }

  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.ownBuffers.push([name, t]);
    return t;
  }

  protected registerChild<M extends Module>(name: string, m: M): M {
    check(!this.ownChildren.some(([n]) => n === name), `module: two children named '${name}'`);
    this.ownChildren.push([name, m]);
    return m;
  }

  namedChildren(): ReadonlyArray<readonly [string, Module]> {
    return this.ownChildren;
  }

  /** Every module of the tree with its path ('' for this one), parents before children. */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [n, c] of this.ownChildren) out.push(...c.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Every parameter of the tree with its dotted name: a module's own first, then its children's, in order. */
  namedParameters(): Array<[string, Tensor]> {
    return this.collect((m) => m.ownParams);
  }

  /** Every buffer of the tree with its dotted name, in the same order as namedParameters. */
  namedBuffers(): Array<[string, Tensor]> {
    return this.collect((m) => m.ownBuffers);
  }

  private collect(own: (m: Module) => Array<[string, Tensor]>): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [path, m] of this.namedModules()) for (const [n, t] of own(m)) out.push([path ? `${path}.${n}` : n, t]);
    return out;
  }

  /** Parameters and buffers: what a state dict holds. */
  namedTensors(): Array<[string, Tensor]> {
    return [...this.namedParameters(), ...this.namedBuffers()];
  }

  /** Sets training (true) or evaluation mode on the whole tree. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** A copy of every parameter and buffer. */
  state(): StateDict {
    return new Map(this.namedTensors().map(([n, t]) => [n, Float32Array.from(t.data)]));
  }

  /** The shape of every parameter and buffer (what is written to disk beside the values). */
  shapes(): Map<string, readonly number[]> {
    return new Map(this.namedTensors().map(([n, t]) => [n, t.shape]));
  }

  /**
   * Copies `state` into the parameters and buffers. Every tensor must be there with its
   * size; names the module does not have are errors too (a state of another model).
   */
  loadState(state: ReadonlyMap<string, Float32Array>, what = 'state'): void {
    const tensors = this.namedTensors();
    const missing = tensors.filter(([n]) => !state.has(n)).map(([n]) => n);
    const known = new Set(tensors.map(([n]) => n));
    const unexpected = [...state.keys()].filter((n) => !known.has(n));
    if (missing.length || unexpected.length) {
      throw new LthError(`${what}: ${[
        missing.length ? `missing ${missing.join(', ')}` : '',
        unexpected.length ? `unexpected ${unexpected.join(', ')}` : '',
      ].filter(Boolean).join('; ')}`);
    }
    for (const [name, t] of tensors) {
      const src = state.get(name)!;
      check(src.length === t.size, `${what}: tensor '${name}' has ${src.length} values, expected ${t.size} (shape [${t.shape.join(', ')}])`);
      t.data.set(src);
    }
  }
}

/** Children applied in order, as PyTorch's nn.Sequential. */
/** children[i] and children[i + 1] as one function (Module.fusedWith), or undefined where they run apart. */
export function fusedAt(children: readonly Module[], i: number): ((x: Tensor) => Tensor) | undefined {
  return i + 1 < children.length ? children[i].fusedWith?.(children[i + 1]) : undefined;
}

export class Sequential extends Module {
  constructor(layers: ReadonlyArray<readonly [string, Module]>) {
    super();
    for (const [n, m] of layers) this.registerChild(n, m);
  }

  forward(x: Tensor): Tensor {
    const children = this.namedChildren().map(([, m]) => m);
    for (let i = 0; i < children.length; i++) {
      const fused = fusedAt(children, i);
      x = fused ? fused(x) : children[i].forward(x);
      if (fused) i++;
    }
    return x;
  }

  describe(): ModuleDesc {
    return { type: 'sequential', layers: this.namedChildren().map(([n, m]) => [n, m.describe()]) };
  }
}
