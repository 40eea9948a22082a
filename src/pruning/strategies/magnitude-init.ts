import { pruneLowestPerLayer, type Strategy } from '../strategy.js';

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
    return pruneLowestPerLayer(ctx, ctx.theta0, 'θ0');
  },
};
