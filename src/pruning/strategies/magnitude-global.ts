import { check } from '../../core/errors.js';
import { copyMask, countOnes, smallestRemainingPooled } from '../mask.js';
import { pruneCount, rateOf, trainedWeights, type Strategy } from '../strategy.js';

/**
 * Global magnitude pruning (the paper's VGG/ResNet experiments): one threshold across all
 * layers not ignored, removing `rate` of their pooled remaining weights, where the rate is
 * the largest one among the pooled layers.
 */
export const magnitudeGlobal: Strategy = {
  name: 'magnitude_global',
  description: 'the smallest |w| across all layers not ignored (--ignore), one threshold',
  when: 'after_training',
  structure: 'unstructured',
  prune(ctx) {
    const trained = trainedWeights(ctx, this.name);
    const out = copyMask(ctx.mask);
    const pooled = [...out.keys()].filter((n) => !ctx.ignore.includes(n));
    check(pooled.length > 0, 'global pruning: every prunable layer is ignored');
    const rate = Math.max(...pooled.map((n) => rateOf(ctx, n)));
    const masks = pooled.map((n) => out.get(n)!);
    const values = pooled.map((n) => {
      const w = trained.get(n);
      check(w !== undefined, `pruning: trained weights lack '${n}'`);
      return w;
    });
    const count = pruneCount(rate, masks.reduce((a, m) => a + countOnes(m), 0));
    smallestRemainingPooled(values, masks, count).forEach((indices, l) => {
      for (const i of indices) masks[l][i] = 0;
    });
    return out;
  },
};
