import { countOnes, type Mask } from '../mask.js';
import { synflowScores } from '../scores.js';
import { pooledLayers, pooledRemoveCount, pruneLowestScores, type Strategy } from '../strategy.js';

/** Rounds of SynFlow's iterative pruning, as its paper. */
export const SYNFLOW_ROUNDS = 100;

/**
 * SynFlow (Tanaka et al., NeurIPS 2020): data-free; prunes in SYNFLOW_ROUNDS rounds on an
 * exponential schedule, each round re-scoring the weights left with |w ⊙ ∂R/∂w| (R: the
 * sum of the outputs of the network with |θ0| on an input of ones) and keeping the highest,
 * one threshold across the layers not ignored.
 */
export const synflow: Strategy = {
  name: 'synflow',
  description: `iterative synaptic flow at θ0 (no data), ${SYNFLOW_ROUNDS} rounds, across all layers not ignored`,
  when: 'at_init',
  structure: 'unstructured',
  global: true,
  prune(ctx) {
    const pooled = pooledLayers(ctx, this.name);
    const start = pooled.reduce((a, n) => a + countOnes(ctx.mask.get(n)!), 0);
    const end = start - pooledRemoveCount(ctx, pooled);
    const shape = ctx.sample(1).shape.slice(1);
    const model = ctx.model();
    let mask: Mask = ctx.mask;
    for (let r = 1; r <= SYNFLOW_ROUNDS; r++) {
      const keep = r === SYNFLOW_ROUNDS ? end : Math.round(start * (end / start) ** (r / SYNFLOW_ROUNDS));
      const left = pooled.reduce((a, n) => a + countOnes(mask.get(n)!), 0);
      const scores = synflowScores(model, ctx.theta0, mask, shape);
      mask = pruneLowestScores({ ...ctx, mask }, scores, pooled, left - keep);
    }
    return mask;
  },
};
