import { LthError } from '../core/errors.js';
import type { ModelSpec } from './spec.js';

/** Hidden widths of `spec`'s architecture and the prunable weights they give. */
export interface Resized {
  readonly widths: number[];
  readonly weights: number;
}

/**
 * The hidden widths, all the original ones scaled by one factor and rounded (at least 1),
 * whose network has the number of prunable weights closest to `weights` (the question of
 * the 'small_dense' baseline: a dense network as big as a ticket). Counts grow by one
 * neuron's (or channel's) weights at a time as the factor grows, so the result is within
 * one neuron's worth of `weights`.
 */
export function widthsForWeights(spec: ModelSpec, weights: number): Resized {
  const original = spec.hiddenWidths;
  const build = spec.withWidths;
  if (!original || !build) throw new LthError(`model ${spec.name} has no hidden widths to shrink (small_dense needs a model with them)`);
  const seen = new Map<string, Resized>();
  const at = (f: number): Resized => {
    const widths = original.map((w) => Math.max(1, Math.round(w * f)));
    const key = widths.join(',');
    let r = seen.get(key);
    if (!r) {
      const model = build(widths);
      const sizes = new Map(model.namedParameters().map(([n, t]) => [n, t.size]));
      r = { widths, weights: model.prunableNames().reduce((a, n) => a + sizes.get(n)!, 0) };
      seen.set(key, r);
    }
    return r;
  };
  let lo = 0, hi = 1;
  if (at(hi).weights <= weights) return at(hi);
  if (at(lo).weights >= weights) return at(lo);
  // Invariant: at(lo) has at most `weights`, at(hi) more.
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (at(mid).weights <= weights) lo = mid;
    else hi = mid;
  }
  const below = at(lo), above = at(hi);
  return weights - below.weights <= above.weights - weights ? below : above;
}
