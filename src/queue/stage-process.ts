/**
 * One stage, run by a worker in a process of its own so that the worker's event loop stays
 * free to keep the job's lock alive while training blocks this one. It never commits:
 * with every other file of the stage written, it prints the stage's done.json record and
 * exits; the worker commits it if it still holds the job. Protocol: JSON lines on stdout
 * ({type: 'progress'|'notice'|'done'|'error'}); exit status 0 (done), 2 (the stage cannot be run:
 * bad data, a damaged input), anything else a crash.
 *
 * argv[2]: JSON { root, run, stage, settings } (settings: the worker's run-settings request).
 */
import path from 'node:path';
import { resolveContext } from '../backend/index.js';
import { LthError } from '../core/errors.js';
import { runStage } from '../lottery/stage.js';
import { planLottery } from '../lottery/plan.js';
import { checkRunData } from '../lottery/runner.js';
import { experimentAt } from '../lottery/verify.js';
import type { StageResult } from '../store/layout.js';
import { loadSplits } from '../training/run.js';
import { parseStageJob } from './jobs.js';

const say = (msg: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(msg)}\n`);

function main(): void {
  const args = JSON.parse(process.argv[2]) as { root: string; run: string; stage: string; settings: Record<string, string | number> };
  const job = parseStageJob({ v: 1, run: args.run, stage: args.stage });
  const exp = experimentAt(path.join(args.root, job.run)), { h } = exp;
  const spec = planLottery(h).find((s) => s.id === job.stage);
  if (!spec) throw new LthError(`job: run ${job.run} has no stage ${job.stage}`);
  const context = resolveContext(args.settings);
  const parent = process.ppid;
  let last = 0;
  let committed: StageResult | null = null;
  const { result, skipped } = runStage(exp, spec, {
    context,
    splits: (seed) => {
      const splits = loadSplits({ ...h.training, seed });
      checkRunData(exp.runDir, splits);
      return splits;
    },
    // A worker that died leaves its stage to the next one: stop rather than train for nobody.
    stopRequested: () => (process.ppid !== parent ? 'the worker that started this stage is gone' : null),
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 1000 && p.point.iteration < p.iterations) return;
      last = now;
      say({ type: 'progress', iteration: p.point.iteration, iterations: p.iterations, testAccuracy: p.point.testAccuracy, stage: p.stage });
    },
    commit: (_file, done) => { committed = done; },
    onNotice: (message, warning) => say({ type: 'notice', message, warning }),
  });
  say({ type: 'done', skipped, result: committed ?? result });
}

try {
  main();
} catch (e) {
  const user = e instanceof LthError;
  say({ type: 'error', user, message: user ? (e as Error).message : String((e as Error).stack ?? e) });
  process.exitCode = user ? 2 : 1;
}
