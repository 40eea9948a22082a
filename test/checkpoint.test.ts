/**
 * Checkpoints end to end: `lth lottery --checkpoint-every 100it` killed with SIGKILL once a
 * pruned level has checkpointed resumes from that checkpoint and ends with the files of a
 * run that never checkpointed (same run directory name: the flag is not a hyperparameter);
 * and a Conv-2 with dropout stage (on a tiny synthetic CIFAR-10) stopped after a
 * checkpoint resumes to the uninterrupted stage's bytes, dropout's random streams included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { activeContext } from '../src/backend/index.js';
import { resolveLottery } from '../src/lottery/hparams.js';
import { planLottery } from '../src/lottery/plan.js';
import { prepareRun } from '../src/lottery/runner.js';
import { experimentOf, runStage, type Experiment } from '../src/lottery/stage.js';
import { FILES } from '../src/store/layout.js';
import { checkpointIteration, isCheckpointFile } from '../src/training/checkpoint.js';
import { loadSplits } from '../src/training/run.js';
import { writeCifarDir } from '../src/data/testing.js';
import { killLthWhen, runLth as lth, lastJson } from '../src/cli/testing.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-checkpoint-cli-'));



/** Every file of every stage of run `a` is in run `b` with the same bytes (done.json but its timing); no checkpoint is left. */
function sameRun(a: string, b: string, stages: readonly string[]): void {
  for (const id of stages) {
    const da = path.join(a, id), db = path.join(b, id);
    const files = fs.readdirSync(da).sort();
    assert.deepEqual(fs.readdirSync(db).sort().filter((f) => !f.includes('.tmp-')), files, `${id}: the same files`);
    assert.ok(!files.some(isCheckpointFile), `${id}: no checkpoint left`);
    for (const f of files) {
      if (f === FILES.done) {
        const strip = (dir: string) => ({ ...JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), seconds: 0, seal: '' });
        assert.deepEqual(strip(db), strip(da), `${id}/${f}`);
      } else {
        assert.ok(fs.readFileSync(path.join(da, f)).equals(fs.readFileSync(path.join(db, f))), `${id}/${f} differs`);
      }
    }
  }
}

test('lth lottery killed with SIGKILL after a checkpoint resumes from it to the files of a run without checkpoints', async () => {
  const args = ['lottery', '--steps', '600it', '--eval-every', '50', '--levels', '1', '--json'];
  const killedRoot = tmp(), cleanRoot = tmp();
  const level1 = () => {
    const runs = fs.readdirSync(killedRoot).filter((d) => fs.existsSync(path.join(killedRoot, d, 'replicate_0')));
    return runs.length ? path.join(killedRoot, runs[0], 'replicate_0', 'level_1', 'main') : null;
  };
  // Kill once level 1 has a checkpoint, whatever it is writing then.
  await killLthWhen([...args, '--checkpoint-every', '100it', '--root', killedRoot], () => {
    const dir = level1();
    return dir !== null && fs.existsSync(path.join(dir, 'checkpoint.json')) && !fs.existsSync(path.join(dir, 'done.json'));
  });
  const dir = level1()!;
  assert.ok(!fs.existsSync(path.join(dir, 'done.json')), 'killed inside level 1');
  const at = checkpointIteration(dir);
  assert.ok(at !== null && at >= 100 && at < 600 && at % 100 === 0, `a checkpoint at ${at}`);

  const resumed = lth([...args, '--checkpoint-every', '100it', '--root', killedRoot]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const m = /lth: stage replicate_0\/level_1\/main: resuming from its checkpoint at iteration (\d+) of 600/.exec(resumed.stderr);
  assert.ok(m && Number(m[1]) >= at, `resumed from its checkpoint: ${resumed.stderr}`);
  const clean = lth([...args, '--checkpoint-every', 'off', '--root', cleanRoot]);
  assert.equal(clean.code, 0, clean.stderr);
  const { runDir: killedRun, ...resumedSummary } = lastJson(resumed.stdout);
  const { runDir: cleanRun, ...cleanSummary } = lastJson(clean.stdout);
  assert.equal(path.basename(killedRun as string), path.basename(cleanRun as string), '--checkpoint-every does not rename the run');
  assert.deepEqual(resumedSummary, cleanSummary);
  sameRun(cleanRun as string, killedRun as string, ['replicate_0/level_0/main', 'replicate_0/level_1/main']);
  assert.match(lth(['lottery', '--checkpoint-every', '10', '--root', cleanRoot]).stderr, /^lth: error: --checkpoint-every: cannot parse '10'; expected a step/m);
});

test('Conv-2 with dropout: a dense stage stopped after a checkpoint resumes to the uninterrupted stage\'s bytes (dropout masks included)', () => {
  const data = tmp();
  writeCifarDir(path.join(data, 'cifar-10-batches-bin'), 20);
  // 50 training samples in batches of 10: 5 iterations an epoch; 8 iterations evaluated every 2.
  const stageRun = (checkpointEvery: string): { exp: Experiment; id: string } => {
    const h = resolveLottery({ model: 'conv2_dropout', dataDir: data, steps: '8it', batchSize: 10, evalEvery: 2, levels: 1, checkpointEvery, root: tmp() });
    const exp = experimentOf(h);
    prepareRun(exp);
    return { exp, id: planLottery(h)[0].id };
  };
  const context = activeContext();
  const splits = new Map<number, ReturnType<typeof loadSplits>>();
  const options = (exp: Experiment, stopRequested?: () => string | null) => ({
    context, stopRequested, onNotice: () => {},
    splits: (seed: number) => splits.get(seed) ?? splits.set(seed, loadSplits({ ...exp.h.training, seed })).get(seed)!,
  });
  const clean = stageRun('off');
  runStage(clean.exp, planLottery(clean.exp.h)[0], options(clean.exp));

  const r = stageRun('3it');
  const spec = planLottery(r.exp.h)[0];
  // Questions: before training, then after the runs ending at 2, 3 (a checkpoint), 4: stopped there, checkpointed at 4.
  let calls = 0;
  assert.throws(() => runStage(r.exp, spec, options(r.exp, () => (++calls === 4 ? 'TEST' : null))), /stopped by TEST/);
  assert.equal(checkpointIteration(path.join(r.exp.runDir, r.id)), 4);
  runStage(r.exp, spec, options(r.exp));
  sameRun(clean.exp.runDir, r.exp.runDir, [r.id]);
});
