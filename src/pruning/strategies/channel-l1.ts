import type { Strategy } from '../strategy.js';
import { pruneUnitsByL1 } from '../units.js';

/**
 * Structured (Li et al., ICLR 2017, "Pruning filters for efficient ConvNets"): in each
 * convolution, the output channels whose filters have the smallest L1 norm, at the layer's
 * rate of its remaining channels; a channel goes with the next layer's inputs that come
 * from it (its input channel, or after pooling and flatten its block of H·W columns), so the
 * network compacts. Fully connected layers keep their neurons.
 */
export const channelL1: Strategy = {
  name: 'channel_l1',
  description: "in each convolution, whole output channels of smallest filter L1 norm of trained weights, at the layer's rate of its channels (structured: the network compacts)",
  when: 'after_training',
  structure: 'channels',
  global: false,
  prune(ctx) {
    return pruneUnitsByL1(ctx, 'conv2d', this.name);
  },
};
