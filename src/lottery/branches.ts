import { LthError } from '../core/errors.js';
import type { Branch } from './branch.js';
import { riglBranch, setBranch } from './branches/dynamic-sparse.js';
import { finetuneBranch } from './branches/finetune.js';
import { invertBranch } from './branches/invert.js';
import { lrRewindBranch } from './branches/lr-rewind.js';
import { mainBranch } from './branches/main.js';
import { randomPruneBranch } from './branches/random-prune.js';
import { reinitSignBranch } from './branches/reinit-sign.js';
import { reinitBranch } from './branches/reinit.js';
import { shuffleBranch } from './branches/shuffle.js';
import { smallDenseBranch } from './branches/small-dense.js';
import { stabilityBranch } from './branches/stability.js';

/**
 * Every branch, the ticket first: one file each under branches/, one line here. The
 * controls (all but 'main') are what --branches names.
 */
const BRANCHES: readonly Branch[] = [
  mainBranch,
  reinitBranch,
  randomPruneBranch,
  reinitSignBranch,
  shuffleBranch,
  finetuneBranch,
  lrRewindBranch,
  invertBranch,
  smallDenseBranch,
  stabilityBranch,
  riglBranch,
  setBranch,
];

export const MAIN = mainBranch.name;

/** The controls a run can train beside the ticket, in registry order. */
export function controlNames(): string[] {
  return BRANCHES.filter((b) => b !== mainBranch).map((b) => b.name);
}

export function getBranch(name: string): Branch {
  const found = BRANCHES.find((b) => b.name === name);
  if (!found) throw new LthError(`--branches: unknown branch '${name}'. Known: ${controlNames().join(', ')}`);
  return found;
}
