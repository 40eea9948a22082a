import { check } from '../core/errors.js';
import type { StateDict } from '../nn/model.js';

/** A mask per prunable weight: 1 keeps an entry, 0 prunes it. */
export type Mask = Map<string, Float32Array>;

/** The all-ones mask for the given weights. */
export function onesMask(weights: StateDict, names: readonly string[]): Mask {
  return new Map(names.map((n) => {
    const w = weights.get(n);
    check(w !== undefined, `mask: no weight '${n}'`);
    return [n, new Float32Array(w.length).fill(1)];
  }));
}

export function countOnes(m: Float32Array): number {
  let c = 0;
  for (let i = 0; i < m.length; i++) if (m[i] !== 0) c++;
  return c;
}

/** Remaining entries per layer. */
export function layerCounts(mask: Mask): Map<string, number> {
  return new Map([...mask].map(([n, m]) => [n, countOnes(m)]));
}

/** Fraction of all prunable weights still remaining. */
export function density(mask: Mask): number {
  let kept = 0, total = 0;
  for (const m of mask.values()) {
    kept += countOnes(m);
    total += m.length;
  }
  return total === 0 ? 1 : kept / total;
}

/**
 * Indices of the `count` smallest |values| among the entries where `mask` is 1.
 * Ties break by position (the earlier entry goes first), so pruning is deterministic.
 * A typed-array sort finds the threshold magnitude; entries below it all go, then
 * entries equal to it in index order.
 */
export function smallestRemaining(values: Float32Array, mask: Float32Array, count: number): Int32Array {
  const out = new Int32Array(count);
  if (count === 0) return out;
  const remaining = countOnes(mask);
  check(count <= remaining, `pruning: asked to remove ${count} of ${remaining} remaining weights`);
  const mags = new Float32Array(remaining);
  for (let i = 0, r = 0; i < mask.length; i++) if (mask[i] !== 0) mags[r++] = Math.abs(values[i]);
  mags.sort();
  const threshold = mags[count - 1];
  let below = 0;
  for (let r = 0; r < remaining && mags[r] < threshold; r++) below++;
  let n = 0, ties = count - below;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] === 0) continue;
    const a = Math.abs(values[i]);
    if (a < threshold) out[n++] = i;
    else if (a === threshold && ties > 0) { out[n++] = i; ties--; }
  }
  return out;
}
