import { countOnes, onesMask } from '../../pruning/mask.js';
import type { Branch } from '../branch.js';
import { getModel, modelNames } from '../../models/registry.js';

/**
 * "Why not train a smaller network directly?": a dense network of the run's architecture,
 * its hidden widths shrunk (by one factor) until it has the ticket's number of prunable
 * weights, freshly initialised and trained for the same budget.
 */
export const smallDenseBranch: Branch = {
  name: 'small_dense',
  label: 'small dense',
  description: "a dense network with hidden widths shrunk to the ticket's number of weights, fresh initialisation",
  refuses: (run) => (run.model.hiddenWidths && run.model.withWidths ? null
    : `${run.model.name} has no hidden widths to shrink; the baseline needs a model with them (${modelNames().filter((n) => getModel(n).hiddenWidths).join(', ')})`),
  start: (ctx) => {
    let weights = 0;
    for (const m of ctx.levelMask.values()) weights += countOnes(m);
    const { model, init } = ctx.smallDense(weights, 'small_dense');
    return { init, mask: onesMask(init, model.prunableNames()), model, from: 'start' };
  },
};
