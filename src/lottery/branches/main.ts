import { masked, type Branch } from '../branch.js';

/** The winning ticket: the level's IMP mask on the rewind weights (θ0 by default). */
export const mainBranch: Branch = {
  name: 'main',
  label: 'winning ticket',
  description: 'the IMP ticket: the level\'s mask, survivors reset to θ0 (or the rewind step)',
  start: (ctx) => ({ init: masked(ctx.rewind, ctx.levelMask), mask: ctx.levelMask }),
};
