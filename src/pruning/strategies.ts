import { LthError, check } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { StateDict } from '../nn/model.js';
import { countOnes, smallestRemaining, type Mask } from './mask.js';

/** What a pruning step needs beyond the trained weights and the current mask. */
export interface PruneSpec {
  /** Fraction of each layer's *remaining* weights to remove ('fc1.weight' -> 0.2). */
  readonly rates: ReadonlyMap<string, number>;
  /** For random pruning: the seed and level that name its random stream. */
  readonly seed: number;
  readonly level: number;
  /** For global pruning: layers left untouched. */
  readonly ignore: readonly string[];
}

/** A pruning strategy is a pure function (spec, trained weights, current mask) -> new mask. */
export type Strategy = (spec: PruneSpec, trained: StateDict, mask: Mask) => Mask;

/** How many of `remaining` weights a `rate` removes; round to nearest, as the paper's ladder. */
export function pruneCount(rate: number, remaining: number): number {
  return Math.round(rate * remaining);
}

function copyMask(mask: Mask): Mask {
  return new Map([...mask].map(([n, m]) => [n, Float32Array.from(m)]));
}

function rateOf(spec: PruneSpec, name: string): number {
  const r = spec.rates.get(name);
  check(r !== undefined, `pruning: no rate for layer '${name}'`);
  return r;
}

/** The paper's strategy: in each layer, remove the smallest-magnitude fraction of what remains. */
export const magnitudeLayerwise: Strategy = (spec, trained, mask) => {
  const out = copyMask(mask);
  for (const [name, m] of out) {
    const w = trained.get(name);
    check(w !== undefined, `pruning: trained weights lack '${name}'`);
    for (const i of smallestRemaining(w, m, pruneCount(rateOf(spec, name), countOnes(m)))) m[i] = 0;
  }
  return out;
};

/**
 * Global magnitude pruning (the paper's VGG/ResNet experiments): one threshold
 * across all layers not ignored, removing `rate` of their pooled remaining weights.
 * The rate is the largest one among the pooled layers.
 */
export const magnitudeGlobal: Strategy = (spec, trained, mask) => {
  const out = copyMask(mask);
  const pooled = [...out.keys()].filter((n) => !spec.ignore.includes(n));
  check(pooled.length > 0, 'global pruning: every prunable layer is ignored');
  const rate = Math.max(...pooled.map((n) => rateOf(spec, n)));
  const entries: Array<[number, number, number]> = []; // |w|, layer, index
  pooled.forEach((name, l) => {
    const w = trained.get(name)!, m = out.get(name)!;
    for (let i = 0; i < m.length; i++) if (m[i] !== 0) entries.push([Math.abs(w[i]), l, i]);
  });
  entries.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const count = pruneCount(rate, entries.length);
  for (let e = 0; e < count; e++) out.get(pooled[entries[e][1]])![entries[e][2]] = 0;
  return out;
};

/** Random pruning: removes the same number per layer as layerwise magnitude would, at random. */
export const randomLayerwise: Strategy = (spec, _trained, mask) => {
  const out = copyMask(mask);
  const rng = new Rng(spec.seed, 'prune', spec.level);
  for (const [name, m] of out) {
    const remaining: number[] = [];
    for (let i = 0; i < m.length; i++) if (m[i] !== 0) remaining.push(i);
    const count = pruneCount(rateOf(spec, name), remaining.length);
    // Partial Fisher–Yates: the first `count` of a random permutation of the remaining entries.
    for (let k = 0; k < count; k++) {
      const j = k + rng.int(remaining.length - k);
      [remaining[k], remaining[j]] = [remaining[j], remaining[k]];
      m[remaining[k]] = 0;
    }
  }
  return out;
};

const STRATEGIES: ReadonlyArray<readonly [string, Strategy]> = [
  ['magnitude_layerwise', magnitudeLayerwise],
  ['magnitude_global', magnitudeGlobal],
  ['random_layerwise', randomLayerwise],
];

export function strategyNames(): string[] {
  return STRATEGIES.map(([n]) => n);
}

export function getStrategy(name: string): Strategy {
  const found = STRATEGIES.find(([n]) => n === name);
  if (!found) throw new LthError(`Unknown pruning strategy '${name}'. Known: ${strategyNames().join(', ')}`);
  return found[1];
}

/**
 * A random mask with exactly the per-layer counts of `like` (the random_prune
 * control), drawn from the given stream.
 */
export function randomMaskLike(like: Mask, rng: Rng): Mask {
  return new Map([...like].map(([name, m]) => {
    const keep = countOnes(m);
    const perm = rng.permutation(m.length);
    const out = new Float32Array(m.length);
    for (let k = 0; k < keep; k++) out[perm[k]] = 1;
    return [name, out];
  }));
}

/**
 * Scales the per-layer rates by one factor s (rates keep their ratios, each capped
 * at 1) so that `rounds` rounds of layerwise pruning leave `target` of all weights:
 * Σ_l N_l (1 - s·r_l)^rounds = target · Σ_l N_l, solved by bisection.
 */
export function ratesForTarget(rates: ReadonlyMap<string, number>, sizes: ReadonlyMap<string, number>, target: number, rounds: number): Map<string, number> {
  check(target > 0 && target < 1, `target density must be in (0, 1), got ${target}`);
  check(Number.isInteger(rounds) && rounds >= 1, `target density needs at least 1 pruning round, got ${rounds}`);
  const names = [...rates.keys()];
  const total = names.reduce((a, n) => a + sizes.get(n)!, 0);
  const densityAt = (s: number) => names.reduce((a, n) => a + sizes.get(n)! * (1 - Math.min(1, s * rates.get(n)!)) ** rounds, 0) / total;
  let lo = 0, hi = 1 / Math.min(...names.map((n) => rates.get(n)!));
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (densityAt(mid) > target) lo = mid; else hi = mid;
  }
  return new Map(names.map((n) => [n, Math.min(1, hi * rates.get(n)!)]));
}
