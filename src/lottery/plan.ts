import path from 'node:path';
import { parseStep } from '../core/steps.js';
import { getStrategy } from '../pruning/registry.js';
import { stagePath } from '../store/layout.js';
import { MAIN, getBranch } from './branches.js';
import type { LotteryHparams } from './hparams.js';

/**
 * One stage of a lottery experiment: a network trained once, from starting weights and a
 * mask that earlier stages determine. Stages are named by their path in the run
 * directory; `deps` are the stages whose files this one reads, so a stage may run as soon
 * as they are finished, in any process.
 */
export interface StageSpec {
  /** The stage's path in its run directory, replicate_<r>/level_<k>/<branch>: its identity. */
  readonly id: string;
  readonly replicate: number;
  /** The replicate's seed (the run's seed + replicate). */
  readonly seed: number;
  readonly level: number;
  readonly branch: string;
  /** Ids of the stages whose files it reads. */
  readonly deps: readonly string[];
  /** What it starts from, in words (lth lottery --dry-run). */
  readonly inputs: string;
  /** Whether it keeps the weights at the rewind step (the dense stage of a run that rewinds). */
  readonly keepRewind: boolean;
}

/** Whether a run resets survivors to a later step than θ0. */
export function rewinds(h: LotteryHparams): boolean {
  const s = parseStep(h.rewindStep, '--rewind-step');
  return s.epochs > 0 || s.iterations > 0;
}

/**
 * Every stage of the experiment `h` with its inputs and dependencies, computed without
 * training anything, in an order that runs each stage after its dependencies: per
 * replicate, level 0 (the dense network from θ0), then per pruned level k the ticket
 * (the mask of pruning level k-1's trained weights) and each control. Level k's stages all
 * depend on level k-1's ticket only (and the dense stage for its rewind weights): the
 * controls of a level and the replicates can run in parallel, the tickets of a replicate
 * form a chain. With --at-init, level k prunes θ0 straight to the k-th density: no level
 * depends on another.
 */
export function planLottery(h: LotteryHparams): StageSpec[] {
  const strategy = getStrategy(h.strategy);
  const rewinding = rewinds(h);
  const resetTo = rewinding ? `the dense run's weights at ${h.rewindStep}` : 'θ0';
  const out: StageSpec[] = [];
  // Every ticket but the last level's stops once the next level's mask settles.
  const search = (k: number) => (h.earlyBird && k < h.levels
    ? `; stops at the first draw of level ${k + 1}'s mask within ${h.earlyBird.epsilon} of the previous draw (every ${h.earlyBird.every}; early bird)` : '');
  for (let r = 0; r < h.replicates; r++) {
    const seed = h.training.seed + r;
    const dense = stagePath(r, 0, MAIN);
    out.push({
      id: dense, replicate: r, seed, level: 0, branch: MAIN, deps: [],
      inputs: `${h.transferFrom !== undefined ? `θ0 of ${path.join(h.transferFrom, dense)}` : `θ0 drawn from seed ${seed}`}, nothing pruned${rewinding ? `; keeps its weights at ${h.rewindStep}` : ''}${search(0)}`,
      keepRewind: rewinding,
    });
    for (let k = 1; k <= h.levels; k++) {
      const prev = stagePath(r, k - 1, MAIN);
      // A level pruned at initialisation, or transferred from another run, needs no earlier
      // stage of this run (but the dense one's rewind weights).
      const independent = h.atInit || h.transferFrom !== undefined;
      const deps = independent ? (rewinding ? [dense] : []) : rewinding && k > 1 ? [prev, dense] : [prev];
      const mask = h.transferFrom !== undefined
        ? `the mask of ${path.join(h.transferFrom, stagePath(r, k, MAIN))}, on its θ0`
        : h.atInit
          ? `${strategy.name} pruning of θ0 to ${(100 * h.densities[k - 1]).toFixed(1)}% of the weights`
          : `${strategy.name} pruning of level ${k - 1}'s ${strategy.when === 'at_init' ? 'mask at θ0' : 'trained weights'}`;
      for (const name of [MAIN, ...h.branches]) {
        const branch = getBranch(name);
        out.push({
          id: stagePath(r, k, name), replicate: r, seed, level: k, branch: name, deps,
          inputs: `${branch.description}; level mask: ${mask}; reset to ${resetTo}${name === MAIN ? search(k) : ''}`,
          keepRewind: false,
        });
      }
    }
  }
  return out;
}
