import fs from 'node:fs';
import os from 'node:os';
import type { RunContext } from '../src/backend/index.js';
import { LthError } from '../src/core/errors.js';

/** Runs a benchmark's main: a user error (LthError) is printed as `label: message` with exit code 2, never a stack trace. */
export function runBench(label: string, main: () => void | Promise<void>): void {
  const fail = (e: unknown): void => {
    if (e instanceof LthError) {
      process.stderr.write(`${label}: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  };
  try {
    main()?.catch(fail);
  } catch (e) {
    fail(e);
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

/**
 * The backend, its SIMD path, the threads and the machine, as every bench's header gives
 * them: the same code runs at very different speeds on AVX-512 and AVX2 machines.
 */
export function machineLine(context: RunContext): string {
  const { simd, threads } = context.settings;
  return `backend ${context.backend.name}${simd === 'none' ? '' : ` (${simd})`}, ${threads} thread(s); ${cpuModel()}, ${os.cpus().length} cores; node ${process.version}`;
}
