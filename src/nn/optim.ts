import { getBackend, type UpdateRule } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';

/** An optimiser and its hyperparameters, as a run's settings give them. */
export interface OptimizerSettings {
  readonly name: 'adam' | 'sgd';
  readonly lr: number;
  /** SGD only. */
  readonly momentum: number;
  /** SGD only (coupled L2, as PyTorch). */
  readonly weightDecay: number;
}

/** Adam's fixed hyperparameters: PyTorch's defaults, which the paper's experiments use. */
export const ADAM_BETA1 = 0.9, ADAM_BETA2 = 0.999, ADAM_EPS = 1e-8;

/** The update rule of step `step` (counted from 1) for these settings, as the fused kernels take it. */
export function updateRule(s: OptimizerSettings, step: number): UpdateRule {
  return s.name === 'adam'
    ? { kind: 'adam', lr: s.lr, beta1: ADAM_BETA1, beta2: ADAM_BETA2, eps: ADAM_EPS, step }
    : { kind: 'sgd', lr: s.lr, momentum: s.momentum, weightDecay: s.weightDecay };
}

/** State arrays an optimiser keeps per parameter: [m, v] for Adam, [momentum buffer] for SGD. */
export function stateArrays(s: OptimizerSettings, size: number): Float32Array[] {
  return s.name === 'adam' ? [new Float32Array(size), new Float32Array(size)] : [new Float32Array(size)];
}

/** The names of those arrays, as PyTorch's optimisers call them in their state dicts. */
export function stateNames(s: OptimizerSettings): readonly string[] {
  return s.name === 'adam' ? ['exp_avg', 'exp_avg_sq'] : ['momentum_buffer'];
}

/**
 * An optimiser's state as a program exports it (Program.optimizerState): the updates made
 * so far (Adam's step count) and every state array by `<parameter>.<state name>`
 * ('fc1.weight.exp_avg'), each at its parameter's full size with pruned entries zero, so
 * every program gives the same names and values.
 */
export interface OptimizerState {
  readonly steps: number;
  readonly arrays: ReadonlyMap<string, Float32Array>;
}

/**
 * Checks a state to be loaded against what a program expects: the step count, and exactly
 * the arrays `sizes` names (`<parameter>.<state name>` → size), each of its size.
 */
export function checkOptimizerState(state: OptimizerState, sizes: ReadonlyMap<string, number>): void {
  check(Number.isInteger(state.steps) && state.steps >= 0, `optimizer state: the step count must be a non-negative integer, got ${state.steps}`);
  const missing = [...sizes.keys()].filter((n) => !state.arrays.has(n)), unexpected = [...state.arrays.keys()].filter((n) => !sizes.has(n));
  if (missing.length || unexpected.length) {
    throw new LthError(`optimizer state: ${[missing.length ? `missing ${missing.join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''].filter(Boolean).join('; ')}`);
  }
  for (const [n, size] of sizes) {
    const a = state.arrays.get(n)!;
    check(a.length === size, `optimizer state: '${n}' has ${a.length} values, expected ${size}`);
  }
}

export function checkOptimizer(s: OptimizerSettings): void {
  check(s.lr > 0 && Number.isFinite(s.lr), `${s.name}: learning rate must be a positive number, got ${s.lr}`);
  if (s.name === 'sgd') {
    check(s.momentum >= 0 && s.momentum < 1, `sgd: momentum must be in [0, 1), got ${s.momentum}`);
    check(s.weightDecay >= 0, `sgd: weight decay must be >= 0, got ${s.weightDecay}`);
  }
}

/** A parameter an optimiser updates, with its mask (0 = pruned: held at exactly zero, with its state). */
export interface ParamSlot {
  readonly tensor: Tensor;
  readonly mask: Float32Array | null;
}

/**
 * Adam (PyTorch's update rule) or SGD with momentum and coupled weight decay (PyTorch's),
 * over parameter slots. step() applies one update from the accumulated gradients and
 * zeroes them (the kernels do both in one pass); masked entries, and their state, stay
 * exactly zero.
 */
export class Optimizer {
  private readonly state: Float32Array[][];
  /** Updates made so far (Adam's step count). */
  steps = 0;

  constructor(private readonly slots: readonly ParamSlot[], readonly settings: OptimizerSettings) {
    checkOptimizer(settings);
    this.state = slots.map((p) => stateArrays(settings, p.tensor.size));
  }

  /** The state arrays of each slot, in the slots' order: stateNames(settings) of each (live, not copies). */
  slotState(): readonly (readonly Float32Array[])[] {
    return this.state;
  }

  /** One update at the settings' learning rate, or at `lr` (a schedule's). */
  step(lr = this.settings.lr): void {
    const be = getBackend();
    const s = { ...this.settings, lr };
    this.steps++;
    this.slots.forEach(({ tensor: p, mask }, i) => {
      const st = this.state[i];
      if (s.name === 'adam') be.adam(p.data, p.ensureGrad(), st[0], st[1], mask, p.size, s.lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, this.steps);
      else be.sgd(p.data, p.ensureGrad(), st[0], mask, p.size, s.lr, s.momentum, s.weightDecay);
      p.markGradZero();
    });
  }
}
