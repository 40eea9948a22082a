import { Tensor } from '../../tensor/tensor.js';
import { graspScores } from '../scores.js';
import { pooledLayers, pooledRemoveCount, pruneLowestScores, type Strategy } from '../strategy.js';

/** Samples of the training set GraSP scores on: one batch. */
export const GRASP_BATCH = 256;

/**
 * GraSP (Wang, Zhang & Grosse, ICLR 2020): removes the weights of lowest θ ⊙ Hg at θ0 (the
 * paper's highest S = -θ ⊙ Hg: removing them reduces the gradient flow least), logits at
 * temperature 200, one threshold across the layers not ignored.
 */
export const grasp: Strategy = {
  name: 'grasp',
  description: `the lowest θ·Hg at θ0 (gradient signal preservation) on ${GRASP_BATCH} training samples, across all layers not ignored`,
  when: 'at_init',
  structure: 'unstructured',
  global: true,
  prune(ctx) {
    const pooled = pooledLayers(ctx, this.name);
    const { x, labels, shape } = ctx.sample(GRASP_BATCH);
    const scores = graspScores(ctx.model(), ctx.theta0, ctx.mask, new Tensor(x, shape), labels);
    return pruneLowestScores(ctx, scores, pooled, pooledRemoveCount(ctx, pooled), true);
  },
};
