import type { UpdateRule } from '../backend/index.js';
import { check } from '../core/errors.js';
import { updateRule, type OptimizerSettings } from '../nn/optim.js';

/**
 * A run of training steps on a fused program's kernels (one native call: `run` with the
 * update rule of the first step) and the optimiser's update count after it. Every step
 * run makes an update but a last one whose loss is not finite: the kernels stop there
 * without updating.
 */
export function fusedSteps(
  optimizer: OptimizerSettings | null, updates: number, losses: Float64Array, lr: number | undefined, run: (rule: UpdateRule) => number,
): { ran: number; updates: number } {
  check(optimizer !== null, 'program: compiled for evaluation only, it cannot train');
  const ran = run(updateRule({ ...optimizer, lr: lr ?? optimizer.lr }, updates + 1));
  return { ran, updates: updates + (Number.isFinite(losses[ran - 1]) ? ran : ran - 1) };
}
