/**
 * The store checks itself: every finished stage's done.json records the SHA-256 of its
 * files; a damaged or missing file, or a damaged done.json, stops a resumed run with an
 * error naming it; `lth verify` reports it, and `--repair` redoes exactly the damaged
 * stages and those after them, with the results of the undamaged run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import { repairRun, verifyRun } from '../src/lottery/verify.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-verify-'));
const args = { steps: '20it', evalEvery: 10, levels: 2, branches: ['reinit'] };
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

test('done.json records every file\'s SHA-256; damage stops a resumed run; verify --repair redoes exactly what it must', () => {
  const clean = runLottery(resolveLottery({ ...args, root: tmp() }));
  const { runDir } = runLottery(resolveLottery({ ...args, root: tmp() }));
  const stage = (id: string) => path.join(runDir, id);
  const done = JSON.parse(fs.readFileSync(path.join(stage('replicate_0/level_1/main'), 'done.json'), 'utf8'));
  assert.deepEqual(Object.keys(done.files).sort(), ['hparams.json', 'mask.safetensors', 'metrics.csv', 'model_final.safetensors', 'model_init.safetensors']);
  assert.equal(done.files['model_final.safetensors'], sha(path.join(stage('replicate_0/level_1/main'), 'model_final.safetensors')));
  assert.ok(verifyRun(runDir).every((c) => c.state === 'whole'));

  // One byte of a weight file flipped; another stage's done.json cut short.
  const final = path.join(stage('replicate_0/level_1/main'), 'model_final.safetensors');
  const bytes = fs.readFileSync(final);
  bytes[bytes.length - 1] ^= 0x40;
  fs.writeFileSync(final, bytes);
  const reinitDone = path.join(stage('replicate_0/level_1/reinit'), 'done.json');
  fs.writeFileSync(reinitDone, fs.readFileSync(reinitDone, 'utf8').slice(0, 40));
  assert.throws(() => runLottery(resolveLottery({ ...args, root: path.dirname(runDir) })),
    /finished stage replicate_0\/level_1\/main is damaged: .*model_final\.safetensors is damaged .*lth verify .* --repair/);

  const checks = verifyRun(runDir);
  assert.deepEqual(checks.filter((c) => c.state === 'damaged').map((c) => c.id), ['replicate_0/level_1/main', 'replicate_0/level_1/reinit']);
  const r = spawnSync(process.execPath, [cli, 'verify', runDir], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stdout, /3 stages whole, 2 damaged, 0 unfinished/);
  assert.match(r.stdout, /damaged replicate_0\/level_1\/reinit: .*done\.json is damaged/);

  const level0 = path.join(stage('replicate_0/level_0/main'), 'done.json');
  const before = fs.readFileSync(level0, 'utf8');
  const { redone, summary } = repairRun(runDir);
  assert.deepEqual(redone, ['replicate_0/level_1/main', 'replicate_0/level_1/reinit', 'replicate_0/level_2/main', 'replicate_0/level_2/reinit']);
  assert.equal(fs.readFileSync(level0, 'utf8'), before, 'the dense stage was not redone');
  assert.deepEqual(summary, clean.summary, 'the repaired run has the undamaged run\'s results');
  for (const id of redone) {
    for (const f of ['mask.safetensors', 'model_init.safetensors', 'model_final.safetensors']) {
      assert.equal(sha(path.join(runDir, id, f)), sha(path.join(clean.runDir, id, f)), `${id}/${f}`);
    }
  }
  assert.ok(verifyRun(runDir).every((c) => c.state === 'whole'));
  // A missing file is damage too.
  fs.rmSync(path.join(stage('replicate_0/level_2/reinit'), 'metrics.csv'));
  assert.match(verifyRun(runDir).find((c) => c.id === 'replicate_0/level_2/reinit')!.problems.join(), /metrics\.csv is missing/);
});

test('an edited number in done.json, and a finished stage removed under finished ones, are damage: verify names them, status and the report too', () => {
  const { runDir } = runLottery(resolveLottery({ ...args, root: tmp() }));
  const stage = (id: string) => path.join(runDir, id);
  const file = path.join(stage('replicate_0/level_2/reinit'), 'done.json');
  const done = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.match(done.seal, /^[0-9a-f]{64}$/);
  fs.writeFileSync(file, JSON.stringify({ ...done, earlyStopTestAccuracy: 0.99 }, null, 2));
  assert.match(verifyRun(runDir).find((c) => c.id === 'replicate_0/level_2/reinit')!.problems.join(), /done\.json was changed since the stage finished/);
  // The report leaves it out with a warning, and shows where it stands.
  const report = spawnSync(process.execPath, [cli, 'report', runDir, '--json'], { encoding: 'utf8' });
  assert.equal(report.status, 0, report.stderr);
  assert.deepEqual(JSON.parse(report.stdout.trim().split('\n').pop()!).complete, false);
  assert.match(report.stderr + report.stdout, /1 finished stage\(s\) changed since they finished, left out as unfinished .*replicate_0\/level_2\/reinit \(.*done\.json was changed/);
  assert.match(fs.readFileSync(path.join(runDir, 'report.html'), 'utf8'), /reinit: damaged since it finished: left out/);

  fs.rmSync(stage('replicate_0/level_0'), { recursive: true });
  const level0 = verifyRun(runDir).find((c) => c.id === 'replicate_0/level_0/main')!;
  assert.equal(level0.state, 'damaged');
  assert.match(level0.problems.join(), /level_0.main is gone or unfinished, but replicate_0\/level_1\/main, computed from it, is finished/);

  fs.writeFileSync(file, '{"replicate": 0, "lev');
  const status = spawnSync(process.execPath, [cli, 'status', runDir], { encoding: 'utf8' });
  assert.equal(status.status, 1, status.stderr);
  assert.match(status.stdout, /damaged replicate_0\/level_2\/reinit: .*done\.json is damaged .*lth verify .* --repair' redoes it/);
});
