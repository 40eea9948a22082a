import { NOT_PRUNED_HERE, masked, type Branch } from '../branch.js';

/**
 * The inversion sanity check of Frankle et al. (ICLR 2021): the run's strategy keeps its
 * lowest-scored weights instead of its highest, survivors reset to θ0. A method whose
 * scores mean something loses accuracy under inversion; one whose inverted masks train as
 * well found per-layer densities, not which weights to keep. With IMP it inverts each
 * level's pruning of the ticket it prunes.
 */
export const invertBranch: Branch = {
  name: 'invert',
  label: 'inverted scores',
  description: "the run's strategy keeping the lowest-scored weights instead of the highest, survivors reset to θ0",
  refuses: (run) => (run.masks === 'transfer' ? `levels ${NOT_PRUNED_HERE.transfer} were not pruned by this run's strategy: there are no scores of it to invert` : null),
  start: (ctx) => {
    const mask = ctx.pruneInverted();
    return { init: masked(ctx.rewind, mask), mask };
  },
};
