import { pruneLowestPerLayer, trainedWeights, type Strategy } from '../strategy.js';

/** The paper's strategy: in each layer, remove the smallest-magnitude fraction of what remains. */
export const magnitudeLayerwise: Strategy = {
  name: 'magnitude_layerwise',
  description: "in each layer, the smallest |w| of the trained weights, at the layer's rate (the paper's)",
  when: 'after_training',
  structure: 'unstructured',
  global: false,
  prune(ctx) {
    return pruneLowestPerLayer(ctx, trainedWeights(ctx, this.name), 'trained weights');
  },
};
