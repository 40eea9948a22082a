import { LthError } from '../../core/errors.js';
import { masked, type Branch } from '../branch.js';

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
  start: (ctx) => {
    if (!ctx.trained) throw new LthError('--branches finetune: levels pruned at initialisation have no trained weights to fine-tune');
    return { init: masked(ctx.trained, ctx.levelMask), mask: ctx.levelMask, lr: 'final' };
  },
};
