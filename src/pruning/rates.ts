import { check } from '../core/errors.js';

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
