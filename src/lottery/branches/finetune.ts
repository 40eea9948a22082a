import { NOT_PRUNED_HERE, masked, type Branch } from '../branch.js';

/**
 * The classic prune-and-fine-tune baseline: the pruned network keeps its trained weights
 * (level k-1's, under level k's mask) and trains on, with a fresh optimiser at the
 * schedule's final learning rate, for as many iterations as the ticket (Renda, Frankle &
 * Carbin, ICLR 2020), instead of being reset.
 */
export const finetuneBranch: Branch = {
  name: 'finetune',
  label: 'fine-tuned',
  description: "the ticket's mask on the trained weights it was pruned from, trained on at the final learning rate (no reset)",
  refuses: (run) => (run.masks === 'imp' ? null : `levels ${NOT_PRUNED_HERE[run.masks]} have no trained weights of this run to fine-tune`),
  start: (ctx) => {
    if (!ctx.trained) throw new Error('finetune: a level without trained weights (refuses() lets no such run start)');
    return { init: masked(ctx.trained, ctx.levelMask), mask: ctx.levelMask, lr: 'final' };
  },
};
