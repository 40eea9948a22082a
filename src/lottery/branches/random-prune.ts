import { randomMaskLike } from '../../pruning/mask.js';
import { masked, type Branch } from '../branch.js';

/** The paper's random-pruning control: a random mask with the ticket's per-layer counts, on the rewind weights. */
export const randomPruneBranch: Branch = {
  name: 'random_prune',
  label: 'random pruning',
  description: "a random mask with the ticket's per-layer counts, survivors reset to θ0",
  start: (ctx) => {
    const mask = randomMaskLike(ctx.levelMask, ctx.rng('random_prune'));
    return { init: masked(ctx.rewind, mask), mask };
  },
};
