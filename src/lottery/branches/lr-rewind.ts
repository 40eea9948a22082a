import { NOT_PRUNED_HERE, masked, type Branch } from '../branch.js';

/**
 * Learning-rate rewinding (Renda, Frankle & Carbin, ICLR 2020): the pruned network keeps
 * its trained weights, like fine-tuning, but replays the learning-rate schedule from the
 * rewind step to the end, as the ticket does. Under a constant schedule it is fine-tuning.
 */
export const lrRewindBranch: Branch = {
  name: 'lr_rewind',
  label: 'learning rate rewound',
  description: "the ticket's mask on the trained weights it was pruned from, the learning-rate schedule replayed from the rewind step",
  refuses: (run) => (run.masks === 'imp' ? null : `levels ${NOT_PRUNED_HERE[run.masks]} have no trained weights of this run to retrain`),
  start: (ctx) => {
    if (!ctx.trained) throw new Error('lr_rewind: a level without trained weights (refuses() lets no such run start)');
    return { init: masked(ctx.trained, ctx.levelMask), mask: ctx.levelMask };
  },
};
