import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killLthWhen, runLth as lth, lastJson } from '../src/cli/testing.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-cli-'));



test('lth train --json: the last stdout line is the summary; the same seed gives identical metrics', () => {
  const out = tmp();
  const args = ['train', '--model', 'lenet_300_100', '--dataset', 'mnist', '--steps', '200it', '--eval-every', '100', '--json'];
  const a = lth([...args, '--out', out]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stderr, '', 'no progress with --json');
  const s = lastJson(a.stdout);
  for (const key of ['model', 'dataset', 'seed', 'steps', 'earlyStopIteration', 'earlyStopValLoss', 'earlyStopTestAccuracy', 'finalTestAccuracy', 'seconds', 'backend']) {
    assert.ok(key in s, `summary has ${key}`);
  }
  assert.equal(s.model, 'lenet_300_100');
  assert.ok((s.earlyStopTestAccuracy as number) > 0.85, `200 iterations reach > 85%: ${s.earlyStopTestAccuracy}`);
  for (const f of ['hparams.json', 'metrics.csv', 'model_final.safetensors', 'summary.json']) assert.ok(fs.existsSync(path.join(out, f)), f);
  const b = lastJson(lth(args).stdout);
  const strip = ({ seconds: _s, ...rest }: Record<string, unknown>) => rest;
  assert.deepEqual(strip(b), strip(s));
  assert.notDeepEqual(strip(lastJson(lth([...args, '--seed', '1']).stdout)), strip(s));
});

test('user mistakes: clear message, non-zero exit, no stack trace', () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2]));
  for (const name of ['train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) fs.writeFileSync(path.join(dir, name), Buffer.alloc(8));
  const cases: Array<[string[], RegExp]> = [
    [['train', '--model', 'lenet'], /Unknown model 'lenet'. Known: lenet_300_100/],
    [['train', '--dataset', 'imagenet'], /Unknown dataset 'imagenet'/],
    [['train', '--steps', '5000iters'], /--steps: cannot parse '5000iters'/],
    [['train', '--lr', '-1'], /--lr must be a positive number, got -1/],
    [['train', '--batch-size', 'ten'], /--batch-size: expected an integer, got 'ten'/],
    [['train', '--bogus', '1'], /unknown flag --bogus/],
    [['train', '--data-dir', dir], /is truncated: dimensions \[5, 28, 28\] need 3920 bytes of data, found 2/],
    [['lottery', '--rate', '1.5'], /--rate must be in \(0, 1\)/],
    [['lottery', '--levels', '-2'], /--levels must be a non-negative integer/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['train', '--sparse', 'maybe'], /--sparse: expected one of auto, on, off, got 'maybe'/],
    [['train', '--threads', '0'], /--threads must be an integer from 1 to 256, got '0'/],
    [['stability', '--eval-every', '5'], /--eval-every: lth stability evaluates the two trained copies and the path between them only/],
    [['lottery', '--branches', 'reinit,inverse', '--dry-run'], /--branches: unknown branch 'inverse'. Known: reinit, random_prune, reinit_sign, shuffle, finetune, lr_rewind, invert, small_dense, stability, rigl, set/],
    // A dry run makes the checks that need the data set's size too.
    [['lottery', '--steps', '100it', '--rewind-step', '100it', '--dry-run'], /--rewind-step 100it \(100 iterations\) must be before the end of the training budget 100it \(100 iterations\)/],
    [['lottery', '--model', 'cifar_resnet_20', '--dataset', 'mnist', '--steps', '10it', '--dry-run'], /--lr-schedule: milestone 80ep \(\d+ iterations\) is not inside the training budget \(10 iterations\)/],
  ];
  for (const [args, message] of cases) {
    const r = lth(args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, message);
    assert.match(r.stderr, /^lth: error: /m);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack for ${args.join(' ')}`);
  }
});

test('a lottery run killed with SIGKILL mid-level resumes to the same summary as an uninterrupted run', async () => {
  const args = ['lottery', '--steps', '150it', '--eval-every', '50', '--levels', '3', '--branches', 'reinit', '--json'];
  const killedRoot = tmp(), cleanRoot = tmp();
  const level2 = () => {
    const runs = fs.readdirSync(killedRoot).filter((d) => fs.existsSync(path.join(killedRoot, d, 'replicate_0')));
    return runs.length ? path.join(killedRoot, runs[0], 'replicate_0', 'level_2', 'main') : null;
  };
  // Kill once level 2 has started (its mask is written) but not finished.
  await killLthWhen([...args, '--root', killedRoot], () => {
    const dir = level2();
    return dir !== null && fs.existsSync(path.join(dir, 'mask.safetensors')) && !fs.existsSync(path.join(dir, 'done.json'));
  });
  assert.ok(!fs.existsSync(path.join(level2()!, 'done.json')), 'killed mid-level');
  const resumed = lth([...args, '--root', killedRoot]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const clean = lth([...args, '--root', cleanRoot]);
  const { runDir: _a, ...resumedSummary } = lastJson(resumed.stdout);
  const { runDir: _b, ...cleanSummary } = lastJson(clean.stdout);
  assert.equal(resumedSummary.complete, true);
  assert.deepEqual(resumedSummary, cleanSummary);
  // ls lists the run with its progress.
  const ls = lth(['ls', '--root', killedRoot]);
  assert.match(ls.stdout, /7 of 7 stages done, complete .*steps=150it/);
});

test('lth lottery --dry-run prints the plan, trains nothing; --json gives the stages', () => {
  const root = tmp();
  const r = lth(['lottery', '--levels', '2', '--branches', 'reinit', '--replicates', '2', '--root', root, '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(10 stages, 0 done\)/);
  assert.match(r.stdout, /to run  replicate_1\/level_2\/reinit +after \[replicate_1\/level_1\/main\]/);
  assert.deepEqual(fs.readdirSync(root), [], 'nothing written');
  const j = lastJson(lth(['lottery', '--levels', '1', '--root', root, '--dry-run', '--json']).stdout);
  assert.deepEqual((j.stages as Array<{ id: string; deps: string[]; done: boolean }>).map((s) => [s.id, s.deps, s.done]),
    [['replicate_0/level_0/main', [], false], ['replicate_0/level_1/main', ['replicate_0/level_0/main'], false]]);
});

test('run settings from flags and the environment: a flag wins, both are recorded in done.json', () => {
  const root = tmp();
  const r = lth(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '1', '--root', root, '--threads', '1', '--sparse', 'on', '--json'], { LTH_FUSED: 'off', LTH_SPARSE: 'off' });
  assert.equal(r.code, 0, r.stderr);
  const runDir = lastJson(r.stdout).runDir as string;
  const done = JSON.parse(fs.readFileSync(path.join(runDir, 'replicate_0/level_1/main/done.json'), 'utf8'));
  assert.deepEqual([done.numerics.threads, done.numerics.sparse, done.numerics.fused, done.program], [1, 'on', 'off', 'graph']);
});

test('SIGINT stops a lottery run at a safe point with a one-line message; the same command resumes it', async () => {
  const args = ['lottery', '--steps', '1500it', '--eval-every', '50', '--levels', '2'];
  const root = tmp();
  const child = spawn(process.execPath, [cli, ...args, '--root', root], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const stage = (k: number) => {
    const runs = fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'replicate_0')));
    return runs.length ? path.join(root, runs[0], 'replicate_0', `level_${k}`, 'main') : null;
  };
  // Interrupt once level 1 has started (its mask is written) but not finished.
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      const dir = stage(1);
      if (dir && fs.existsSync(path.join(dir, 'mask.safetensors')) && !fs.existsSync(path.join(dir, 'done.json'))) {
        clearInterval(poll);
        child.kill('SIGINT');
        resolve();
      }
    }, 5);
    child.on('exit', () => { clearInterval(poll); reject(new Error('the run finished before it could be interrupted')); });
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /^lth: stopped by SIGINT at a safe point; every finished stage is kept: run the same command again to resume$/m);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack');
  assert.ok(fs.existsSync(path.join(stage(0)!, 'done.json')), 'the finished stage is kept');
  assert.ok(!fs.existsSync(path.join(stage(1)!, 'done.json')), 'stopped inside level 1');
  const resumed = lth([...args, '--root', root, '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(lastJson(resumed.stdout).complete, true);
});

test('SIGINT stops lth train with a message that promises no resume: a training has no stages to keep', async () => {
  const child = spawn(process.execPath, [cli, 'train', '--steps', '50000it', '--eval-every', '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '', asked = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    // The first line comes before the data loads and the stop handler is in place.
    if (stderr.includes('lth train:') && !asked) {
      asked = true;
      setTimeout(() => child.kill('SIGINT'), 2000);
    }
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /^lth: stopped by SIGINT at a safe point; lth train keeps nothing of an unfinished training \(lth lottery keeps and resumes its stages\)$/m);
});

test('the machine\'s failures are clear errors with status 3 and no stack: a file in place of a directory', () => {
  const file = path.join(tmp(), 'not-a-dir');
  fs.writeFileSync(file, 'x');
  for (const args of [['lottery', '--steps', '10it', '--levels', '1', '--root', file], ['train', '--steps', '10it', '--out', path.join(file, 'out')]]) {
    const r = lth(args);
    assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^lth: error: cannot mkdir .*not-a-dir.* \(ENOTDIR\): a file stands where a directory is needed/m);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.doesNotMatch(r.stderr, /it 10\/10/, 'nothing trained first');
  }
});

test('extending a run with other run settings says so', () => {
  const root = tmp();
  const base = ['lottery', '--steps', '10it', '--eval-every', '10', '--root', root];
  assert.equal(lth([...base, '--levels', '1', '--threads', '1']).code, 0);
  const r = lth([...base, '--levels', '2', '--threads', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /lth: warning: this run's finished stages were computed with threads 1 \(now 2\): new stages may differ from them in the last bits/);
  const same = ['lottery', '--steps', '10it', '--eval-every', '10', '--root', tmp(), '--threads', '2'];
  assert.equal(lth([...same, '--levels', '1']).code, 0);
  assert.doesNotMatch(lth([...same, '--levels', '2']).stderr, /warning/, 'no warning when nothing differs');
});

test('lth status on a run trained here: counts, each unfinished stage, --json every stage as the library\'s runStatus gives it', async () => {
  const runs = tmp();
  const run = lth(['lottery', '--steps', '20it', '--eval-every', '10', '--levels', '1', '--root', runs, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const runDir = path.join(runs, fs.readdirSync(runs)[0]);
  const text = lth(['status', runDir]);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout.trim(), `${runDir}: 2 done, 0 started (running, or stopped midway), 0 failed, 0 to run (of 2)`);
  fs.rmSync(path.join(runDir, 'replicate_0/level_1/main/done.json'));
  const after = lth(['status', runDir]);
  assert.match(after.stdout, /: 1 done, 1 started \(running, or stopped midway\), 0 failed, 0 to run \(of 2\)\nstarted replicate_0\/level_1\/main\n$/);
  const json = lastJson(lth(['status', runDir, '--json']).stdout);
  const { runStatus } = await import('../src/index.js');
  assert.deepEqual(json.stages, runStatus(runDir).map((s) => JSON.parse(JSON.stringify(s))));
  assert.deepEqual((json.stages as Array<{ state: string }>).map((s) => s.state), ['done', 'started']);
  assert.match(lth(['status', '--help']).stdout, /--json/);
});

test('lth --version prints the package\'s version', () => {
  const r = lth(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
});
