/**
 * A mistake of the user's (bad flag, bad file, impossible hyperparameter). The CLI
 * prints its message without a stack and exits non-zero. Internal invariants throw
 * plain Errors, which keep their stacks.
 */
export class LthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LthError';
  }
}

/** Throws an LthError unless `condition` holds. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new LthError(typeof message === 'string' ? message : message());
}
