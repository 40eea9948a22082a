import type { Strategy } from '../strategy.js';
import { pruneUnitsByL1 } from '../units.js';

/**
 * Structured: in each hidden fully connected layer, the neurons whose rows of trained
 * weights have the smallest L1 norm, at the layer's rate of its remaining neurons; a neuron
 * goes with its outgoing connections (the next layer's column), so the network compacts
 * into smaller dense layers. The output layer's neurons (the classes) stay.
 */
export const neuronL1: Strategy = {
  name: 'neuron_l1',
  description: "in each hidden fully connected layer, whole neurons of smallest L1 norm of trained weights, at the layer's rate of its neurons (structured: the network compacts)",
  when: 'after_training',
  structure: 'neurons',
  global: false,
  prune(ctx) {
    return pruneUnitsByL1(ctx, 'linear', this.name);
  },
};
