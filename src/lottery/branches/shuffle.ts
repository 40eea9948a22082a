import { randomMaskLike } from '../../pruning/mask.js';
import { masked, type Branch } from '../branch.js';

/**
 * The layerwise sanity check of Frankle et al. (ICLR 2021): the ticket's mask shuffled at
 * random within each layer (the same per-layer counts), survivors reset to θ0. It is
 * random_prune's distribution drawn from a stream of its own; pruning-at-initialisation
 * methods whose accuracy survives it found per-layer densities, not connections.
 */
export const shuffleBranch: Branch = {
  name: 'shuffle',
  label: 'shuffled mask',
  description: "the ticket's mask shuffled within each layer, survivors reset to θ0",
  start: (ctx) => {
    const mask = randomMaskLike(ctx.levelMask, ctx.rng('shuffle'));
    return { init: masked(ctx.rewind, mask), mask };
  },
};
