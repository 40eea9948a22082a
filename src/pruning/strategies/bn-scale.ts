import type { Strategy } from '../strategy.js';
import { bnScaledChannels, pruneChannelsByBnScale } from '../units.js';

/**
 * Structured (Liu et al., ICCV 2017, "Learning efficient convolutional networks through
 * network slimming"): the output channels whose batch-norm scale |γ| is smallest after
 * training, with one threshold across the convolutions followed by batch norm, at the
 * largest of their rates of the remaining channels; a channel goes with the next layer's
 * inputs that come from it, so the network compacts. (Network Slimming also trains with an
 * L1 penalty on γ, which this strategy does not add.) For chains such as the VGGs; a
 * residual network is not one.
 */
export const bnScale: Strategy = {
  name: 'bn_scale',
  description: 'whole output channels of smallest |batch-norm γ| after training, one threshold across the convolutions followed by batch norm (Network Slimming; structured: the network compacts)',
  when: 'after_training',
  structure: 'channels',
  global: true,
  prune(ctx) {
    return pruneChannelsByBnScale(ctx, this.name);
  },
  checkModel(model) {
    bnScaledChannels(model, this.name);
  },
};
