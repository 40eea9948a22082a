import { check } from '../../core/errors.js';
import { copyMask, countOnes, smallestRemaining } from '../mask.js';
import { pruneCount, rateOf, type Strategy } from '../strategy.js';

/**
 * Magnitude pruning at initialisation: in each layer, the smallest |θ0| at the layer's rate
 * (the baseline of Frankle et al., ICLR 2021, for the pruning-at-initialisation methods).
 */
export const magnitudeInit: Strategy = {
  name: 'magnitude_init',
  description: "in each layer, the smallest |θ0| at the layer's rate, before any training",
  when: 'at_init',
  structure: 'unstructured',
  global: false,
  prune(ctx) {
    const out = copyMask(ctx.mask);
    for (const [name, m] of out) {
      const w = ctx.theta0.get(name);
      check(w !== undefined, `pruning: θ0 lacks '${name}'`);
      for (const i of smallestRemaining(w, m, pruneCount(rateOf(ctx, name), countOnes(m)))) m[i] = 0;
    }
    return out;
  },
};
