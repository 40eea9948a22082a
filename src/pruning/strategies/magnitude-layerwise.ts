import { check } from '../../core/errors.js';
import { copyMask, countOnes, smallestRemaining } from '../mask.js';
import { pruneCount, rateOf, trainedWeights, type Strategy } from '../strategy.js';

/** The paper's strategy: in each layer, remove the smallest-magnitude fraction of what remains. */
export const magnitudeLayerwise: Strategy = {
  name: 'magnitude_layerwise',
  description: "in each layer, the smallest |w| of the trained weights, at the layer's rate (the paper's)",
  when: 'after_training',
  structure: 'unstructured',
  global: false,
  prune(ctx) {
    const trained = trainedWeights(ctx, this.name);
    const out = copyMask(ctx.mask);
    for (const [name, m] of out) {
      const w = trained.get(name);
      check(w !== undefined, `pruning: trained weights lack '${name}'`);
      for (const i of smallestRemaining(w, m, pruneCount(rateOf(ctx, name), countOnes(m)))) m[i] = 0;
    }
    return out;
  },
};
