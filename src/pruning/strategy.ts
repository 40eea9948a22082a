import { check } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Model, PrunableLayer, StateDict } from '../nn/model.js';
import type { Mask } from './mask.js';

/**
 * A pruning strategy: a pure function of what it declares it needs, returning a new mask.
 * It says when it runs — after training (from the trained weights: magnitude, movement...)
 * or at initialisation (from θ0, the data and the network itself: SNIP, GraSP, SynFlow) —
 * and whether its masks are unstructured or remove whole neurons/channels.
 */
export interface Strategy {
  /** Registry key, written in run hyperparameters: frozen once released. */
  readonly name: string;
  readonly description: string;
  readonly when: 'after_training' | 'at_init';
  readonly structure: 'unstructured' | 'neurons' | 'channels';
  prune(ctx: PruningContext): Mask;
}

/** Everything a strategy may read. */
export interface PruningContext {
  /** The prunable weights: names, module types, shapes, which is the output layer. */
  readonly layers: readonly PrunableLayer[];
  /** The weights the network started from. */
  readonly theta0: StateDict;
  /** The trained weights of the level being pruned; null for a strategy that runs at initialisation. */
  readonly trained: StateDict | null;
  /** The current mask (1 keep, 0 pruned) of every prunable weight. */
  readonly mask: Mask;
  /** Fraction of each layer's *remaining* weights to remove ('fc1.weight' -> 0.2). */
  readonly rates: ReadonlyMap<string, number>;
  /** Layers a global strategy leaves untouched. */
  readonly ignore: readonly string[];
  /** The strategy's own random stream (seed, 'prune', level). */
  readonly rng: Rng;
  /** A fresh network of the architecture (parameters undrawn), for strategies that need gradients or a forward pass. */
  readonly model: () => Model;
  /** Minibatches of the training set, for data-driven scores. */
  readonly sample: (batchSize: number) => { x: Float32Array; labels: Int32Array; shape: readonly number[] };
}

/** How many of `remaining` weights a `rate` removes; round to nearest, as the paper's ladder. */
export function pruneCount(rate: number, remaining: number): number {
  return Math.round(rate * remaining);
}

/** The rate of one layer, which must have one. */
export function rateOf(ctx: Pick<PruningContext, 'rates'>, name: string): number {
  const r = ctx.rates.get(name);
  check(r !== undefined, `pruning: no rate for layer '${name}'`);
  return r;
}

/** The trained weights, which a strategy that runs after training requires. */
export function trainedWeights(ctx: PruningContext, strategy: string): StateDict {
  check(ctx.trained !== null, `${strategy}: needs trained weights (it prunes after training)`);
  return ctx.trained;
}
