import { randomMaskLike } from '../../pruning/mask.js';
import type { SparseTrainMethod } from '../../dynamic/sparse-training.js';
import { masked, type Branch } from '../branch.js';

/**
 * Dynamic sparse training at the ticket's per-layer densities: a random mask with the
 * ticket's per-layer counts on a fresh initialisation, trained the whole budget from
 * iteration 0 while SET or RigL drops and regrows connections (--update-every,
 * --drop-fraction, --update-end). What sparse training from scratch reaches at each IMP
 * level's density, at a fraction of IMP's cost.
 */
function dynamicSparseBranch(method: SparseTrainMethod, label: string, growth: string): Branch {
  return {
    name: method,
    label,
    description: `a random mask with the ticket's per-layer counts on a fresh initialisation, trained from scratch with ${label} (drop the smallest weights, regrow ${growth})`,
    start: (ctx) => {
      const mask = randomMaskLike(ctx.levelMask, ctx.rng(method));
      return { init: masked(ctx.freshInit(method), mask), mask, from: 'start', sparseTrain: method };
    },
  };
}

export const riglBranch = dynamicSparseBranch('rigl', 'RigL', 'where the dense gradient is largest');
export const setBranch = dynamicSparseBranch('set', 'SET', 'at random');
