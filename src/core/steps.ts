import { LthError } from './errors.js';

/**
 * A training duration as written by users: '50000it', '40ep', '2ep100it'.
 * Parsed once; converted to iterations with the data set's iterations per epoch.
 */
export interface Step {
  readonly epochs: number;
  readonly iterations: number;
}

const STEP_RE = /^(?:(\d+)ep)?(?:(\d+)it)?$/;

export function parseStep(text: string, what = 'step'): Step {
  const m = STEP_RE.exec(text.trim());
  if (!m || (m[1] === undefined && m[2] === undefined)) {
    throw new LthError(`${what}: cannot parse '${text}'; expected e.g. '50000it', '40ep' or '2ep100it'`);
  }
  return { epochs: Number(m[1] ?? 0), iterations: Number(m[2] ?? 0) };
}

export function stepToIterations(step: Step, iterationsPerEpoch: number): number {
  return step.epochs * iterationsPerEpoch + step.iterations;
}

export function formatStep(step: Step): string {
  if (step.epochs && step.iterations) return `${step.epochs}ep${step.iterations}it`;
  return step.epochs ? `${step.epochs}ep` : `${step.iterations}it`;
}
