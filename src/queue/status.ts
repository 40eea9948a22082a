import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { planLottery } from '../lottery/plan.js';
import { runOf } from '../lottery/verify.js';
import { FILES, readDone, readFailed } from '../store/layout.js';

/** Where one stage of a run stands, as `lth status` shows it. */
export interface StageStatus {
  readonly id: string;
  /** 'started': its training began (running now, or stopped midway); 'damaged': its done.json cannot be read. */
  readonly state: 'done' | 'started' | 'failed' | 'damaged' | 'to run';
  /** The worker that finished it, or that it failed on (runs trained by a queue's workers). */
  readonly worker?: string;
  /** Why it failed for good. */
  readonly message?: string;
}

/** Every stage of the run in `runDir`, in plan order, read from the store alone (no queue needed). */
export function runStatus(runDir: string): StageStatus[] {
  return planLottery(runOf(runDir)).map((s): StageStatus => {
    const dir = path.join(runDir, s.id);
    let done: ReturnType<typeof readDone>;
    try {
      done = readDone(dir);
    } catch (e) {
      if (!(e instanceof LthError)) throw e;
      return { id: s.id, state: 'damaged', message: `${e.message}; 'lth verify ${runDir} --repair' redoes it` };
    }
    if (done) return { id: s.id, state: 'done', worker: done.worker };
    const failed = readFailed(dir);
    if (failed) return { id: s.id, state: 'failed', worker: failed.worker, message: failed.message };
    return { id: s.id, state: fs.existsSync(path.join(dir, FILES.init)) ? 'started' : 'to run' };
  });
}
