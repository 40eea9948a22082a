import { masked, type Branch } from '../branch.js';
import { orderSeeds, pathBetween } from '../stability.js';

/** Points on the path between the two copies, ends included. */
export const STABILITY_POINTS = 11;

/**
 * Instability of the level's ticket (Frankle, Dziugaite, Roy & Carbin, ICML 2020): the
 * ticket (its mask on the rewind weights) is trained as the main branch trains it, then a
 * second copy from the same start with another data order; the test error along the
 * straight line between the two (STABILITY_POINTS points) and its error barrier are
 * recorded. Tickets that match the dense network are the stable ones: barrier about 0.
 */
export const stabilityBranch: Branch = {
  name: 'stability',
  label: 'stability (copy a)',
  description: 'the ticket trained twice with different data orders; test error along the line between the two',
  start: (ctx) => ({ init: masked(ctx.rewind, ctx.levelMask), mask: ctx.levelMask }),
  analyse: (ctx) => {
    const other = orderSeeds(ctx.seed)[1];
    const b = ctx.retrain(other, 'copy b');
    return { kind: 'instability', orderSeeds: [ctx.seed, other], ...pathBetween(ctx.trained, b, STABILITY_POINTS, ctx.test) };
  },
};
