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

/**
 * A run stopped at a safe point because the user asked (SIGINT, SIGTERM): nothing finished
 * is lost, and the same command resumes it. The CLI prints the message and exits with 130.
 */
export class Stopped extends LthError {
  constructor(readonly reason: string, kept = 'every finished stage is kept: run the same command again to resume') {
    super(`stopped by ${reason} at a safe point; ${kept}`);
    this.name = 'Stopped';
  }
}
