import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { writeFileOnce } from './atomic.js';

/** In a run directory while a process trains or repairs it: who holds it. */
export const RUN_LOCK = 'lock.json';

interface Holder {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
  readonly what: string;
}

// Locks this process holds, by run directory, with how many times each was taken: a repair
// takes the lock and then runs the lottery, which takes it again.
const held = new Map<string, { count: number; content: string }>();

/** Whether the lock's holder may still be running: on this host, whether its process exists; on another, assumed so. */
function mayBeRunning(h: Holder): boolean {
  if (h.host !== os.hostname()) return true;
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): { raw: string; holder: Holder | null } | null {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const h = JSON.parse(raw) as Holder;
    return { raw, holder: Number.isInteger(h.pid) && typeof h.host === 'string' ? h : null };
  } catch {
    return { raw, holder: null };
  }
}

/** Removes the lock file if it still holds `content` (ours): one removed by hand, or taken over since, is left alone. */
function removeIfOurs(file: string, content: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === content) fs.rmSync(file, { force: true });
  } catch {
    // Gone already, or unreadable: nothing of ours to remove.
  }
}

// Registered once per process, on the first lock taken: a sweep takes and releases a lock per run.
let exitHookSet = false;
function releaseAtExit(): void {
  for (const [file, { content }] of held) removeIfOurs(file, content);
  held.clear();
}

/**
 * Takes the run's lock for this process (`what`: the command, for the message another
 * process gets), or throws an LthError naming the process that holds it. Two processes
 * training one run would each train every unfinished stage, and one could lose the
 * checkpoint it resumed from when the other finished that stage. A lock left by a process
 * that is gone (killed) is taken over when that process was on this host; on another host
 * its liveness is unknown, and the message says which file to delete once it has stopped.
 * Returns the release function; the lock is also released when the process exits.
 */
export function lockRun(runDir: string, what: string): () => void {
  const file = path.join(path.resolve(runDir), RUN_LOCK);
  const mine = held.get(file);
  const release = () => {
    const entry = held.get(file);
    if (!entry) return;
    if (--entry.count > 0) return;
    held.delete(file);
    removeIfOurs(file, entry.content);
  };
  if (mine) {
    mine.count++;
    return release;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const content = `${JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString(), what } satisfies Holder)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (writeFileOnce(file, content)) {
      if (!exitHookSet) {
        process.once('exit', releaseAtExit);
        exitHookSet = true;
      }
      held.set(file, { count: 1, content });
      return release;
    }
    const found = readHolder(file);
    if (found === null) continue; // released meanwhile: try again
    const h = found.holder;
    if (h && mayBeRunning(h)) {
      throw new LthError(`${runDir} is in use: lth (${h.what}) has been running on it since ${h.since}, process ${h.pid} on ${h.host}. ` +
        `Wait for it to finish, or stop it and run this again${h.host === os.hostname() ? '' : `; if that process is no longer running, delete ${file}`}`);
    }
    // Its holder is gone (or the file is not a lock): take it over, unless another process just did.
    if (readHolder(file)?.raw === found.raw) fs.rmSync(file, { force: true });
  }
  throw new LthError(`${runDir}: could not take its lock (${file}): other processes keep taking it; run one lth process on a run at a time`);
}
