import { Tensor } from '../../tensor/tensor.js';
import { snipScores } from '../scores.js';
import { pooledLayers, pooledRemoveCount, pruneLowestScores, type Strategy } from '../strategy.js';

/** Samples of the training set SNIP scores on: one batch, as its paper. */
export const SNIP_BATCH = 256;

/**
 * SNIP (Lee et al., ICLR 2019): keeps the weights of highest |w ⊙ ∂L/∂w| at θ0 on one
 * batch of training data, one threshold across the layers not ignored.
 */
export const snip: Strategy = {
  name: 'snip',
  description: `the lowest |w·∂L/∂w| at θ0 on ${SNIP_BATCH} training samples, across all layers not ignored`,
  when: 'at_init',
  structure: 'unstructured',
  global: true,
  prune(ctx) {
    const pooled = pooledLayers(ctx, this.name);
    const { x, labels, shape } = ctx.sample(SNIP_BATCH);
    const scores = snipScores(ctx.model(), ctx.theta0, ctx.mask, new Tensor(x, shape), labels);
    return pruneLowestScores(ctx, scores, pooled, pooledRemoveCount(ctx, pooled));
  },
};
