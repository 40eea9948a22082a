import { check } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Model, PrunableLayer, StateDict } from '../nn/model.js';
import { copyMask, countOnes, smallestRemainingPooled, type Mask } from './mask.js';

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
  /** One threshold across the layers (not in --ignore) rather than each layer at its own rate. */
  readonly global: boolean;
  prune(ctx: PruningContext): Mask;
  /**
   * For a structured strategy: a user error when `model` has nothing it can remove (checked
   * before a lottery trains anything). Absent: the model must have hidden layers of its structure's kind.
   */
  checkModel?(model: Model): void;
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
  /**
   * When set, the fraction of all prunable weights the new mask keeps (pruning at
   * initialisation straight to a density): a global strategy keeps exactly that many over
   * the layers it pools; `rates` then reach it in one round, for a layerwise one.
   */
  readonly targetDensity?: number;
  /** Layers a global strategy leaves untouched. */
  readonly ignore: readonly string[];
  /** The strategy's own random stream (seed, 'prune', level). */
  readonly rng: Rng;
  /** A fresh network of the architecture (parameters undrawn), for strategies that need gradients or a forward pass. */
  readonly model: () => Model;
  /** Minibatches of the training set, for data-driven scores. */
  readonly sample: (batchSize: number) => { x: Float32Array; labels: Int32Array; shape: readonly number[] };
  /**
   * Keep the lowest-scored weights instead of the highest (the inversion sanity check of
   * Frankle et al., ICLR 2021): a strategy that ranks weights ranks them through
   * pruneLowestScores or pruneLowestPerLayer, which honour it; a random one ignores it.
   */
  readonly invert?: boolean;
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

/** The layers a global strategy pools: every prunable weight not in --ignore. */
export function pooledLayers(ctx: PruningContext, strategy: string): string[] {
  const pooled = [...ctx.mask.keys()].filter((n) => !ctx.ignore.includes(n));
  check(pooled.length > 0, `${strategy}: every prunable layer is ignored`);
  return pooled;
}

/**
 * How many of the pooled layers' remaining weights a global strategy removes: down to
 * ctx.targetDensity of all prunable weights when it is set, else the largest rate among the
 * pooled layers of what remains.
 */
export function pooledRemoveCount(ctx: PruningContext, pooled: readonly string[]): number {
  const remaining = pooled.reduce((a, n) => a + countOnes(ctx.mask.get(n)!), 0);
  if (ctx.targetDensity === undefined) return pruneCount(Math.max(...pooled.map((n) => rateOf(ctx, n))), remaining);
  let total = 0, keptElsewhere = 0;
  for (const [n, m] of ctx.mask) {
    total += m.length;
    if (!pooled.includes(n)) keptElsewhere += countOnes(m);
  }
  const keep = Math.round(ctx.targetDensity * total) - keptElsewhere;
  check(keep >= 0 && keep <= remaining, () => `pruning: cannot reach ${ctx.targetDensity} of the weights from the current mask`);
  return remaining - keep;
}

/**
 * A copy of ctx.mask with the `count` lowest-scored remaining weights of the pooled layers
 * removed (by |score|, or by the signed score when `signed`; ties by position).
 */
export function pruneLowestScores(ctx: PruningContext, scores: ReadonlyMap<string, Float32Array>, pooled: readonly string[], count: number, signed = false): Mask {
  const out = copyMask(ctx.mask);
  const masks = pooled.map((n) => out.get(n)!);
  const ranked = pooled.map((n) => {
    const s = scores.get(n);
    check(s !== undefined, `pruning: no scores for layer '${n}'`);
    return ctx.invert ? inverted(s, signed) : s;
  });
  smallestRemainingPooled(ranked, masks, count, signed || ctx.invert === true).forEach((indices, l) => {
    for (const i of indices) masks[l][i] = 0;
  });
  return out;
}

/**
 * A copy of ctx.mask with, in each layer, the lowest-scored (by |score|) of its remaining
 * weights removed at the layer's rate; ties by position.
 */
export function pruneLowestPerLayer(ctx: PruningContext, scores: StateDict, what: string): Mask {
  const out = new Map(ctx.mask);
  for (const name of ctx.mask.keys()) {
    check(scores.has(name), `pruning: ${what} lack '${name}'`);
    const one = new Map([[name, ctx.mask.get(name)!]]);
    const count = pruneCount(rateOf(ctx, name), countOnes(ctx.mask.get(name)!));
    out.set(name, pruneLowestScores({ ...ctx, mask: one }, scores, [name], count).get(name)!);
  }
  return out;
}

/** Scores whose ascending order is the descending order of the originals (by |s| unless `signed`). */
function inverted(s: Float32Array, signed: boolean): Float32Array {
  const out = new Float32Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = signed ? -s[i] : -Math.abs(s[i]);
  return out;
}
