import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSweep, runSweep, SWEEP_JSON, type SweepExecutor } from '../src/sweep/index.js';
import { runLottery } from '../src/lottery/runner.js';
import { FILES, listStages, stageDir } from '../src/store/layout.js';
import { haveRedisServer, startRedisServer } from '../src/queue/redis-server.js';
import { runLth as lth } from '../src/cli/testing.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-sweep-'));


const SWEEP_YAML = `# two pruning rates, tiny budgets
base:
  steps: 20it
  levels: 1
  evalEvery: 10
axes:
  rate: [0.2, 0.5]
`;

test('a 2-run sweep on real MNIST: both lotteries run, one report compares them, sweep.json lists them; run again, it trains nothing', async () => {
  const dir = tmp();
  const file = path.join(dir, 'sweep.yaml');
  fs.writeFileSync(file, SWEEP_YAML);
  const runsRoot = path.join(dir, 'runs');
  const sweep = loadSweep(file, { root: runsRoot });
  const started: string[] = [];
  const r = await runSweep(sweep, { source: file, onRun: (run) => started.push(run.label), onWarning: () => {} });

  assert.deepEqual(started, ['rate=0.2', 'rate=0.5']);
  assert.equal(r.reportDir, path.join(runsRoot, `sweep-${sweep.hash}`), 'the default report directory');
  assert.equal(r.runs.length, 2);
  for (const [i, run] of r.runs.entries()) {
    assert.equal(run.runDir, sweep.runs[i].runDir);
    assert.equal(run.finished, true);
    assert.equal(run.stagesTrained, 2, 'level 0 and level 1');
    assert.equal(run.stagesSkipped, 0);
    assert.equal(listStages(run.runDir).length, 2);
  }
  // Different rates, different masks.
  const density = (runDir: string) => listStages(runDir).find((s) => s.level === 1)!.density;
  assert.ok(density(r.runs[1].runDir) < density(r.runs[0].runDir) - 0.2, `${density(r.runs[0].runDir)} vs ${density(r.runs[1].runDir)}`);

  // The combined report: the compare figures, with both runs in them.
  assert.ok(r.report, 'a report');
  assert.equal(r.report.html, path.join(r.reportDir, 'report.html'));
  assert.ok(r.report.figures.includes('compare-early-stop-accuracy') && r.report.figures.includes('compare-early-stop-iteration'), r.report.figures.join(', '));
  for (const p of r.report.pngs) assert.ok(fs.existsSync(p), p);
  const html = fs.readFileSync(r.report.html, 'utf8');
  for (const run of r.runs) assert.ok(html.includes(run.runDir), `the report lists ${run.runDir}`);
  // The compare figures name each run by its axis values.
  for (const label of ['rate=0.2', 'rate=0.5']) assert.ok(html.includes(`>${label}<`), `the report's compare figures name ${label}`);

  // sweep.json: the runs with the hyperparameters that vary.
  assert.equal(r.sweepJson, path.join(r.reportDir, SWEEP_JSON));
  const written = JSON.parse(fs.readFileSync(r.sweepJson, 'utf8'));
  assert.equal(written.sweep, sweep.hash);
  assert.equal(written.report, r.report.html);
  assert.deepEqual(written.axes, { rate: [0.2, 0.5] });
  assert.deepEqual(written.runs.map((x: Record<string, unknown>) => [x.label, x.hash, x.runDir, x.values, x.finished]), [
    ['rate=0.2', sweep.runs[0].hash, sweep.runs[0].runDir, { rate: 0.2 }, true],
    ['rate=0.5', sweep.runs[1].hash, sweep.runs[1].runDir, { rate: 0.5 }, true],
  ]);

  // Again: every stage is found finished, none is trained, no done.json is rewritten.
  const doneFiles = r.runs.flatMap((run) => [0, 1].map((k) => path.join(stageDir(run.runDir, 0, k, 'main'), FILES.done)));
  const mtimes = doneFiles.map((f) => fs.statSync(f).mtimeMs);
  const again = await runSweep(loadSweep(file, { root: runsRoot }), { source: file, onWarning: () => {} });
  assert.deepEqual(again.runs.map((x) => [x.stagesTrained, x.stagesSkipped]), [[0, 2], [0, 2]]);
  assert.deepEqual(doneFiles.map((f) => fs.statSync(f).mtimeMs), mtimes);
  assert.equal(again.reportDir, r.reportDir);
  assert.ok(again.report);
});

test('a sweep on an executor (the queue\'s shape): every run submitted before any is waited for; not waited for, no report yet', async () => {
  const dir = tmp();
  const file = path.join(dir, 'sweep.json');
  fs.writeFileSync(file, JSON.stringify({ base: { steps: '20it', levels: 1, evalEvery: 10 }, axes: { rate: [0.2, 0.5] } }));
  const sweep = loadSweep(file, { root: path.join(dir, 'runs') });
  const calls: string[] = [];
  const submitOnly: SweepExecutor = { submit: async (run) => { calls.push(`submit ${run.label}`); return { runDir: run.runDir, enqueued: 1 }; } };
  const submitted = await runSweep(sweep, { source: file, execute: submitOnly, onWarning: () => {} });
  assert.deepEqual(calls, ['submit rate=0.2', 'submit rate=0.5']);
  assert.equal(submitted.report, null, 'runs not finished: no report');
  assert.deepEqual(submitted.runs.map((r) => [r.finished, r.enqueued]), [[false, 1], [false, 1]]);
  const listed = JSON.parse(fs.readFileSync(submitted.sweepJson, 'utf8'));
  assert.equal(listed.report, null);
  assert.deepEqual(listed.runs.map((r: { finished: boolean }) => r.finished), [false, false]);

  calls.length = 0;
  const waiting: SweepExecutor = {
    ...submitOnly,
    wait: async (run) => {
      calls.push(`wait ${run.label}`);
      const { summary } = runLottery(run.hparams, { onWarning: () => {} }); // a worker, here
      return { finished: summary.complete, summary };
    },
  };
  const done = await runSweep(sweep, { source: file, execute: waiting, onWarning: () => {} });
  assert.deepEqual(calls, ['submit rate=0.2', 'submit rate=0.5', 'wait rate=0.2', 'wait rate=0.5']);
  assert.ok(done.report);
  assert.ok(done.report.figures.includes('compare-early-stop-accuracy'));
  assert.deepEqual(done.runs.map((r) => r.finished), [true, true]);
});

test('lth sweep checks, before anything trains, that a run made earlier was trained on the data the sweep loads', () => {
  const dir = tmp();
  const runs = path.join(dir, 'runs');
  const made = lth(['lottery', '--steps', '20it', '--levels', '1', '--eval-every', '10', '--rate', '0.5', '--root', runs, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const runDir = JSON.parse(made.stdout.trim().split('\n').pop()!).runDir as string;
  // As if its stages had been trained on another directory's files.
  const file = path.join(runDir, FILES.hparams);
  const hp = JSON.parse(fs.readFileSync(file, 'utf8'));
  hp.data.fingerprint = '0'.repeat(32);
  fs.writeFileSync(file, JSON.stringify(hp));
  const sweep = path.join(dir, 'sweep.yml');
  fs.writeFileSync(sweep, SWEEP_YAML);
  const r = lth(['sweep', sweep, '--dry-run', '--root', runs]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /run 2 of 2 \(rate=0\.5\): .* its stages were trained on other mnist data than this command loads/);
});

test('lth sweep FILE --dry-run --json lists the runs and trains nothing; a bad file is a clear error with status 2', () => {
  const dir = tmp();
  const file = path.join(dir, 'sweep.yml');
  fs.writeFileSync(file, 'base: { steps: 20it, levels: 2, evalEvery: 10, branches: [reinit] }\naxes:\n  rate: [0.2, 0.5]\n  rewindStep: [0it, 10it]\n');
  const runs = path.join(dir, 'runs');
  const r = lth(['sweep', file, '--dry-run', '--json', '--root', runs]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.reportDir, path.join(runs, `sweep-${out.sweep}`));
  assert.deepEqual(out.axes, { rate: [0.2, 0.5], rewindStep: ['0it', '10it'] }, 'the axes and their values, as sweep.json gives them');
  assert.deepEqual(out.runs.map((x: { label: string }) => x.label), ['rate=0.2 rewindStep=0it', 'rate=0.2 rewindStep=10it', 'rate=0.5 rewindStep=0it', 'rate=0.5 rewindStep=10it']);
  for (const x of out.runs) {
    assert.match(x.hash, /^[0-9a-f]{16}$/);
    assert.equal(x.runDir, path.join(runs, x.hash));
    assert.equal(x.stages, 5, 'level 0, then levels 1 and 2 with reinit');
    assert.equal(x.done, 0);
  }
  assert.ok(!fs.existsSync(runs), 'nothing written');
  const text = lth(['sweep', file, '--dry-run', '--root', runs]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^sweep [0-9a-f]{16}: 4 runs \(rate x rewindStep\)/);
  assert.match(text.stdout, /rate=0\.5 rewindStep=10it {2}\S+ {2}5 stages/);

  const cases: Array<[string, string, RegExp]> = [
    ['bad.yaml', 'base:\n  steps: 20it\naxes:\n  rate: [0.2,\n  levels: 3\n', /bad\.yaml:[45]:\d+: not valid YAML/],
    ['bad.json', '{ "axes": { "rate": [0.2] },, }', /bad\.json:1:\d+: not valid JSON/],
    ['key.yaml', 'axes: { rat: [0.2] }\n', /key\.yaml: axes: unknown key 'rat'. Known: model, /],
    ['value.yaml', 'base: { steps: 20it }\naxes: { rate: [0.2, 2] }\n', /value\.yaml: run 2 of 2 \(rate=2\): rate must be in \(0, 1\), got 2/],
    ['empty.yaml', 'axes: { rate: [] }\n', /empty\.yaml: axes\.rate is empty/],
    ['budget.yaml', 'base: { steps: 20it, levels: 1 }\naxes: { rewindStep: [0it, 20it] }\n', /budget\.yaml: run 2 of 2 \(rewindStep=20it\): rewindStep 20it \(20 iterations\) must be before the end of the training budget/],
  ];
  for (const [name, content, message] of cases) {
    fs.writeFileSync(path.join(dir, name), content);
    const bad = lth(['sweep', path.join(dir, name), '--root', runs]);
    assert.equal(bad.code, 2, `${name}: ${bad.stderr}`);
    assert.match(bad.stderr, /^lth: error: sweep: /m);
    assert.match(bad.stderr, message);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, `no stack for ${name}`);
  }
  const dry = lth(['sweep', path.join(dir, 'budget.yaml'), '--dry-run', '--root', runs]);
  assert.equal(dry.code, 2, 'a dry run checks the budgets too');
  assert.match(dry.stderr, /budget\.yaml: run 2 of 2 \(rewindStep=20it\): rewindStep 20it/);
  assert.deepEqual(fs.existsSync(runs) ? fs.readdirSync(runs) : [], [], 'no run started');
  const missing = lth(['sweep']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /sweep: expected one sweep file, got none/);
  const wait = lth(['sweep', file, '--wait']);
  assert.equal(wait.code, 2);
  assert.match(wait.stderr, /--wait waits for the runs of --queue URL/);
});

const haveRedis = haveRedisServer();
const children: ChildProcess[] = [];
after(() => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); });

test('lth sweep --queue --wait: every run submitted to the workers, the report written once they have finished; a local sweep then trains nothing', { skip: haveRedis ? false : 'redis-server is not installed' }, async () => {
  const redis = await startRedisServer();
  const port = redis.port;
  const dir = tmp();
  const file = path.join(dir, 'sweep.yaml');
  fs.writeFileSync(file, SWEEP_YAML);
  const store = path.join(dir, 'runs');
  const queue = `redis://127.0.0.1:${port}`;
  fs.mkdirSync(store); // the workers serve a store that exists
  const worker = spawn(process.execPath, [cli, 'worker', '--queue', queue, '--root', store, '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(worker);
  let workerLog = '';
  worker.stderr!.setEncoding('utf8').on('data', (c: string) => { workerLog += c; });
  const sweep = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [cli, 'sweep', file, '--root', store, '--queue', queue, '--wait', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(p);
    let stdout = '', stderr = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    p.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000); // a failed worker must not hang the test
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
  worker.kill('SIGTERM');
  assert.equal(sweep.code, 0, `${sweep.stderr}\nworker: ${workerLog}`);
  const out = JSON.parse(sweep.stdout.trim().split('\n').pop()!);
  assert.deepEqual(out.runs.map((r: { label: string; finished: boolean }) => [r.label, r.finished]), [['rate=0.2', true], ['rate=0.5', true]]);
  assert.ok(out.runs.every((r: { enqueued: number }) => r.enqueued >= 1), 'each run enqueued its first stage');
  assert.ok(fs.existsSync(out.report), 'the combined report');
  for (const r of out.runs) assert.equal(listStages(r.runDir).length, 2);
  // The workers' store is any run's store: here, nothing is left to train.
  const local = lth(['sweep', file, '--root', store, '--json']);
  assert.equal(local.code, 0, local.stderr);
  assert.deepEqual(JSON.parse(local.stdout.trim().split('\n').pop()!).runs.map((r: { stagesTrained: number }) => r.stagesTrained), [0, 0]);
  await redis.stop();
});

test('lth sweep: a run that fails (a learning rate that diverges) is reported by its label; the other runs train, and a second sweep trains nothing again', () => {
  const dir = tmp();
  const file = path.join(dir, 'lr.yml');
  fs.writeFileSync(file, 'base: { steps: 20it, levels: 1, evalEvery: 10, optimizer: sgd }\naxes:\n  lr: [100000000, 0.05]\n');
  const runs = path.join(dir, 'runs');
  const first = lth(['sweep', file, '--root', runs]);
  assert.equal(first.code, 2, first.stderr);
  assert.match(first.stderr, /lth: error: sweep: .*lr\.yml: 1 of 2 runs failed \(.*sweep\.json lists them; the others are kept/);
  assert.match(first.stderr, /\nlr=100000000: training diverged: loss is NaN/);
  assert.doesNotMatch(first.stderr, /\n\s+at /);
  const listed = JSON.parse(fs.readFileSync(path.join(runs, fs.readdirSync(runs).find((d) => d.startsWith('sweep-'))!, 'sweep.json'), 'utf8'));
  assert.deepEqual(listed.runs.map((r: { label: string; finished: boolean; failed?: string }) => [r.label, r.finished, /diverged/.test(r.failed ?? '')]), [['lr=100000000', false, true], ['lr=0.05', true, false]]);
  const again = lth(['sweep', file, '--root', runs]);
  assert.equal(again.code, 2);
  assert.match(again.stdout + again.stderr, /run 2\/2 lr=0\.05: done already \(2 stages\)/);
  // --json gives the results first, then fails.
  const json = lth(['sweep', file, '--root', runs, '--json']);
  assert.equal(json.code, 2);
  assert.deepEqual(JSON.parse(json.stdout.trim().split('\n').pop()!).runs.map((r: { label: string; finished: boolean }) => [r.label, r.finished]), [['lr=100000000', false], ['lr=0.05', true]]);
  assert.match(json.stderr, /lth: error: sweep: .*1 of 2 runs failed/);
});

test('lth sweep: a report directory that holds another sweep\'s results, or cannot be made, is refused before any run trains', () => {
  const dir = tmp();
  const one = path.join(dir, 'one.yml'), two = path.join(dir, 'two.yml');
  fs.writeFileSync(one, 'base: { steps: 20it, levels: 1, evalEvery: 10 }\naxes:\n  rate: [0.3]\n');
  fs.writeFileSync(two, 'base: { steps: 20it, levels: 1, evalEvery: 10 }\naxes:\n  rate: [0.4]\n');
  const runs = path.join(dir, 'runs'), shared = path.join(dir, 'report');
  assert.equal(lth(['sweep', one, '--root', runs, '--report', shared]).code, 0);
  const other = lth(['sweep', two, '--root', runs, '--report', shared]);
  assert.equal(other.code, 2, other.stderr);
  assert.match(other.stderr, /lth: error: sweep: .*two\.yml: .*report holds the results of another sweep \(\w+\); give --report a directory of its own/);
  const notDir = lth(['sweep', two, '--root', runs, '--report', path.join(one, 'report')]);
  assert.equal(notDir.code, 3, notDir.stderr);
  assert.match(notDir.stderr, /cannot mkdir .*one\.yml.report \(ENOTDIR\)/);
  assert.equal(fs.readdirSync(runs).filter((d) => !d.startsWith('sweep-')).length, 1, 'the second sweep trained nothing');
});
