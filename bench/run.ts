import { LthError } from '../src/core/errors.js';

/** Runs a benchmark's main: a user error (LthError) is printed as `label: message` with exit code 2, never a stack trace. */
export function runBench(label: string, main: () => void): void {
  try {
    main();
  } catch (e) {
    if (e instanceof LthError) {
      process.stderr.write(`${label}: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}
