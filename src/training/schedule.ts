import { check, LthError } from '../core/errors.js';
import { parseStep, stepToIterations } from '../core/steps.js';

/**
 * The learning rate at every iteration of a training budget. Runs of steps between two
 * changes go to the program in one call, so a schedule also says where the rate next
 * changes.
 */
export interface LrSchedule {
  /** The rate of the update made at iteration `it` (counted from 0). */
  lrAt(it: number): number;
  /** The first iteration after `it` whose rate may differ from iteration `it`'s. */
  nextChange(it: number): number;
}

export interface ScheduleSettings {
  /** The peak rate. */
  readonly lr: number;
  /** 'constant', 'cosine' (to 0 at the end of the budget) or 'step:M1,M2,...' (multiplied by `gamma` at each milestone). */
  readonly lrSchedule: string;
  /** The factor of a step schedule at each milestone. */
  readonly lrGamma: number;
  /** Linear warmup from lr/W to lr over the first W iterations (as a step: '0it', '2ep'). */
  readonly warmupSteps: string;
}

/** The schedule names --lr-schedule takes. */
export const SCHEDULES = ['constant', 'cosine', 'step:MILESTONES'] as const;

/**
 * The schedule of a run of `iterations` (milestones and warmup given as steps are
 * converted with `perEpoch`). Every value is checked: a milestone past the budget, out of
 * order, or a warmup longer than the budget is an LthError.
 */
export function lrSchedule(s: ScheduleSettings, perEpoch: number, iterations: number): LrSchedule {
  const warmup = stepToIterations(parseStep(s.warmupSteps, '--warmup-steps'), perEpoch);
  check(warmup <= iterations, `--warmup-steps ${s.warmupSteps} (${warmup} iterations) is longer than the training budget (${iterations} iterations)`);
  const base = shape(s, perEpoch, iterations);
  if (warmup === 0) return base;
  return {
    lrAt: (it) => base.lrAt(it) * Math.min(1, (it + 1) / warmup),
    nextChange: (it) => (it + 1 < warmup ? it + 1 : base.nextChange(it)),
  };
}

function shape(s: ScheduleSettings, perEpoch: number, iterations: number): LrSchedule {
  const { lr } = s;
  if (s.lrSchedule === 'constant') return { lrAt: () => lr, nextChange: () => Infinity };
  if (s.lrSchedule === 'cosine') {
    return { lrAt: (it) => lr * 0.5 * (1 + Math.cos((Math.PI * it) / iterations)), nextChange: (it) => it + 1 };
  }
  const m = /^step:(.+)$/.exec(s.lrSchedule);
  if (!m) throw new LthError(`--lr-schedule: expected constant, cosine or step:MILESTONES (e.g. step:80ep,120ep), got '${s.lrSchedule}'`);
  check(Number.isFinite(s.lrGamma) && s.lrGamma > 0, `--lr-gamma must be a positive number, got ${s.lrGamma}`);
  const milestones = m[1].split(',').map((t) => stepToIterations(parseStep(t, '--lr-schedule milestone'), perEpoch));
  milestones.forEach((x, i) => {
    // The schedule may be the model's default (cifar_resnet's step:80ep,120ep) with a budget the user shortened.
    check(x > 0, `--lr-schedule: milestone ${m[1].split(',')[i]} is at iteration 0: a milestone lowers the rate after training has started (use --lr to set the first rate)`);
    check(x < iterations, `--lr-schedule: milestone ${m[1].split(',')[i]} (${x} iterations) is not inside the training budget (${iterations} iterations); give an --lr-schedule that fits the budget (constant, cosine, or step: with earlier milestones)`);
    check(i === 0 || x > milestones[i - 1], `--lr-schedule: milestones must increase, got ${m[1]}`);
  });
  return {
    lrAt: (it) => lr * s.lrGamma ** milestones.filter((x) => x <= it).length,
    nextChange: (it) => milestones.find((x) => x > it) ?? Infinity,
  };
}
