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
  const step = { epochs: Number(m[1] ?? 0), iterations: Number(m[2] ?? 0) };
  if (step.epochs > MAX_STEP || step.iterations > MAX_STEP) throw new LthError(`${what}: '${text}' is more than ${MAX_STEP.toLocaleString('en-US')} epochs or iterations`);
  return step;
}

/** The most epochs or iterations a step may name: far beyond any training, and exact in a double however they combine. */
const MAX_STEP = 1e9;

export function stepToIterations(step: Step, iterationsPerEpoch: number): number {
  return step.epochs * iterationsPerEpoch + step.iterations;
}

export function formatStep(step: Step): string {
  if (step.epochs && step.iterations) return `${step.epochs}ep${step.iterations}it`;
  return step.epochs ? `${step.epochs}ep` : `${step.iterations}it`;
}
