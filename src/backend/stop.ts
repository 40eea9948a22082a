import os from 'node:os';
import { loadNative } from './native.js';

/**
 * Stop requests for long synchronous runs: after watchStop(), the first SIGINT or SIGTERM
 * does not end the process but is recorded, and the returned function gives its name (or
 * null) for the run to stop at its next safe point; a second one ends the process at once.
 * The native addon catches the signals (JavaScript handlers would only run after a
 * synchronous run); without it, signals keep their default action.
 */
export function watchStop(): () => string | null {
  const native = loadNative();
  if (native instanceof Error) return () => null;
  native.watchStopSignals();
  const names = new Map(Object.entries(os.constants.signals).map(([name, n]) => [n, name]));
  return () => {
    const n = native.stopSignal();
    return n ? names.get(n) ?? `signal ${n}` : null;
  };
}
