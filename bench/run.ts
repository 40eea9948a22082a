import fs from 'node:fs';
import os from 'node:os';
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

/** The CPU's model name: /proc/cpuinfo's where there is one, else what os.cpus() reports. */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return os.cpus()[0]?.model ?? 'unknown';
}
