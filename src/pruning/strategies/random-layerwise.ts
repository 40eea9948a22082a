import { copyMask } from '../mask.js';
import { pruneCount, rateOf, type Strategy } from '../strategy.js';

/** Random pruning: removes the same number per layer as layerwise magnitude would, at random. */
export const randomLayerwise: Strategy = {
  name: 'random_layerwise',
  description: "in each layer, random weights at the layer's rate (the same counts as magnitude_layerwise)",
  when: 'after_training',
  structure: 'unstructured',
  global: false,
  prune(ctx) {
    const out = copyMask(ctx.mask);
    for (const [name, m] of out) {
      const remaining: number[] = [];
      for (let i = 0; i < m.length; i++) if (m[i] !== 0) remaining.push(i);
      const count = pruneCount(rateOf(ctx, name), remaining.length);
      // Partial Fisher–Yates: the first `count` of a random permutation of the remaining entries.
      for (let k = 0; k < count; k++) {
        const j = k + ctx.rng.int(remaining.length - k);
        [remaining[k], remaining[j]] = [remaining[j], remaining[k]];
        m[remaining[k]] = 0;
      }
    }
    return out;
  },
};
