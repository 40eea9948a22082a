import { masked, type Branch } from '../branch.js';

/** The paper's random-reinitialisation control: the ticket's mask on a fresh random θ0'. */
export const reinitBranch: Branch = {
  name: 'reinit',
  label: 'random reinit',
  description: "the ticket's mask on a fresh random initialisation",
  start: (ctx) => ({ init: masked(ctx.freshInit('reinit'), ctx.levelMask), mask: ctx.levelMask }),
};
