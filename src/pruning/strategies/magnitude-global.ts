import { check } from '../../core/errors.js';
import { pooledLayers, pooledRemoveCount, pruneLowestScores, trainedWeights, type Strategy } from '../strategy.js';

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
  global: true,
  prune(ctx) {
    const trained = trainedWeights(ctx, this.name);
    const pooled = pooledLayers(ctx, 'global pruning');
    for (const n of pooled) check(trained.has(n), `pruning: trained weights lack '${n}'`);
    return pruneLowestScores(ctx, trained, pooled, pooledRemoveCount(ctx, pooled));
  },
};
