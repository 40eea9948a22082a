/**
 * The distributed queue's costs: the overhead a stage pays for going through Redis and a
 * worker (enqueue to commit, for stages that train 1 iteration, against their own
 * training time), and the makespan of a real run's stages on 1, 2, 4, 8 and 16 workers,
 * simulated from its plan and its stages' measured durations, next to the ideal (total
 * work over the workers, or the longest chain of dependent stages).
 *
 *   node dist/bench/queue.js [--run RUN_DIR] [--json]
 *
 * Needs redis-server (Debian: apt-get install redis-server); without it only the makespan
 * part runs. Without --run, a small run (5 levels, 2 replicates, reinit and random_prune,
 * 300 iterations a stage) is trained first for its durations.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { planLottery } from '../src/lottery/plan.js';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import { runOf } from '../src/lottery/verify.js';
import { QUEUE_NAME } from '../src/queue/jobs.js';
import { haveRedisServer, startRedisServer } from '../src/queue/redis-server.js';
import { simulateMakespan } from '../src/queue/makespan.js';
import { readDone } from '../src/store/layout.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'src', 'cli', 'main.js');
const args = process.argv.slice(2);
const json = args.includes('--json');
const runAt = args.indexOf('--run');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-bench-queue-'));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/** Per stage of a chain of 1-iteration stages: enqueue to commit, and the stage's own training time. */
async function overhead(): Promise<{ stages: number; enqueueToCommitMs: number; trainingMs: number; overheadMs: number } | null> {
  if (!haveRedisServer()) return null;
  const redis = await startRedisServer(), port = redis.port, root = tmp();
  try {
    const queue = `redis://127.0.0.1:${port}`;
    const worker = spawn(process.execPath, [cli, 'worker', '--queue', queue, '--root', root], { stdio: 'ignore' });
    const levels = 12;
    const submit = spawnSync(process.execPath, [cli, 'lottery', '--steps', '1it', '--eval-every', '1', '--levels', String(levels), '--root', root, '--queue', queue, '--wait', '--json'], { encoding: 'utf8' });
    worker.kill('SIGTERM');
    if (submit.status !== 0) throw new Error(`submission failed: ${submit.stderr}`);
    const runDir = JSON.parse(submit.stdout.trim().split('\n').pop()!).runDir as string;
    const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null } });
    const spans: number[] = [], training: number[] = [];
    for (const s of planLottery(runOf(runDir))) {
      const job = await q.getJob(`${path.basename(runDir)}/${s.id}`);
      if (!job?.finishedOn) continue;
      spans.push(job.finishedOn - job.timestamp);
      training.push(1000 * readDone(path.join(runDir, s.id))!.seconds);
    }
    await q.close();
    const e2c = median(spans), t = median(training);
    return { stages: spans.length, enqueueToCommitMs: e2c, trainingMs: t, overheadMs: e2c - t };
  } finally {
    await redis.stop();
  }
}

function makespans(runDir: string) {
  const plan = planLottery(runOf(runDir));
  const secs = new Map(plan.map((s) => [s.id, readDone(path.join(runDir, s.id))?.seconds ?? NaN]));
  if ([...secs.values()].some((v) => !Number.isFinite(v))) throw new Error(`${runDir} has unfinished stages`);
  return { runDir, stages: plan.length, workers: [1, 2, 4, 8, 16].map((w) => ({ workers: w, ...simulateMakespan(plan, (id) => secs.get(id)!, w) })) };
}

const o = await overhead();
const runDir = runAt >= 0 ? args[runAt + 1] : runLottery(resolveLottery({ steps: '300it', evalEvery: 100, levels: 5, replicates: 2, branches: ['reinit', 'random_prune'], root: tmp() })).runDir;
const m = makespans(runDir);
if (json) {
  console.log(JSON.stringify({ overhead: o, makespan: m }));
} else {
  console.log(o ? `queue overhead per stage (median of ${o.stages} one-iteration stages, one worker): enqueue to commit ${o.enqueueToCommitMs.toFixed(0)} ms, of which training ${o.trainingMs.toFixed(0)} ms: overhead ${o.overheadMs.toFixed(0)} ms`
    : 'queue overhead: skipped (no redis-server)');
  console.log(`makespan of ${m.runDir} (${m.stages} stages), simulated from its stages' durations:`);
  for (const w of m.workers) console.log(`  ${String(w.workers).padStart(2)} workers: ${w.makespan.toFixed(1).padStart(8)} s   ideal ${w.ideal.toFixed(1).padStart(8)} s   (${(w.ideal / w.makespan * 100).toFixed(0)}% of ideal speed)`);
}
