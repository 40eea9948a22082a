/**
 * Checkpoints of a lottery stage (runStage with --checkpoint-every), on 600 MNIST training
 * samples (10 iterations an epoch): a stage interrupted after a checkpoint — by a crash that
 * loses the steps since, or by a stop request, which checkpoints where it stopped — resumes
 * from it and ends with every file of the uninterrupted stage (weights, mask, metrics.csv,
 * rewind weights, done.json but its timing) byte for byte, on the graph program (the dense
 * level 0, evaluated in the background, keeping its rewind weights) and the sparse-MLP
 * program (a pruned level rewound to a later step, --sparse on), with Adam and with SGD with
 * momentum; and a branch that trains again after its stage (stability) resumes that from the
 * end of the stage's training. The checkpoint is gone once the stage is done and done.json
 * never lists it; a damaged checkpoint is a clear error; one made with other run settings is
 * ignored with a warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveContext, type RunContext } from '../backend/index.js';
import type { Splits } from '../data/dataset.js';
import { FILES } from '../store/layout.js';
import { CHECKPOINT_JSON, checkpointIteration, isCheckpointFile } from '../training/checkpoint.js';
import { loadSplits } from '../training/run.js';
import { resolveLottery, type LotteryHparams } from './hparams.js';
import { planLottery, type StageSpec } from './plan.js';
import { prepareRun } from './runner.js';
import { experimentOf, runStage, type Experiment, type StageOptions } from './stage.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-checkpoint-'));
const range = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

/** The first 600 / 200 / 200 samples of the replicate's MNIST splits. */
const splitCache = new Map<number, Splits>();
function small(h: LotteryHparams, seed: number): Splits {
  let s = splitCache.get(seed);
  if (!s) {
    const all = loadSplits({ ...h.training, seed });
    s = { name: all.name, train: all.train.subset(range(600)), validation: all.validation.subset(range(200)), test: all.test.subset(range(200)) };
    splitCache.set(seed, s);
  }
  return s;
}

/** A run of `values` under a fresh root, prepared, with its plan by stage id. */
function run(values: Record<string, unknown>): { exp: Experiment; spec: (id: string) => StageSpec } {
  const h = resolveLottery({ ...values, root: tmp() } as never);
  const exp = experimentOf(h);
  prepareRun(exp);
  const plan = planLottery(h);
  return { exp, spec: (id) => plan.find((s) => s.id === id)! };
}

function options(exp: Experiment, context: RunContext, more: Partial<StageOptions> = {}): StageOptions {
  return { context, splits: (seed) => small(exp.h, seed), onNotice: () => {}, ...more };
}

/** Stops at the n-th question (runStage asks once before training, then train() after every run of steps). */
function stopAt(n: number): () => string | null {
  let calls = 0;
  return () => (++calls === n ? 'TEST' : null);
}

/** Every file of stage `id` in both runs is the same, done.json but its `seconds`; no checkpoint is left. */
function sameStage(a: Experiment, b: Experiment, id: string): void {
  const da = path.join(a.runDir, id), db = path.join(b.runDir, id);
  const files = fs.readdirSync(da).sort();
  assert.deepEqual(fs.readdirSync(db).sort(), files, `${id}: the same files`);
  assert.ok(!files.some(isCheckpointFile), `${id}: no checkpoint left`);
  for (const f of files) {
    if (f === FILES.done) {
      const strip = (dir: string) => ({ ...JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), seconds: 0, seal: '' });
      const done = strip(db);
      assert.deepEqual(done, strip(da), `${id}/${f}`);
      assert.ok(!Object.keys(done.files).some(isCheckpointFile), 'done.json lists no checkpoint file');
    } else {
      assert.ok(fs.readFileSync(da + path.sep + f).equals(fs.readFileSync(db + path.sep + f)), `${id}/${f} differs`);
    }
  }
}

for (const optimizer of ['adam', 'sgd'] as const) {
  const opt = optimizer === 'adam' ? { optimizer } : { optimizer, lr: 0.05, momentum: 0.9 };

  test(`graph program, ${optimizer}: the dense level crashed after a checkpoint resumes to the uninterrupted stage's bytes (rewind weights, background evaluation)`, () => {
    const context = resolveContext({ threads: 2 }, {});
    // 70 iterations evaluated every 3 (24 points: in a second thread), rewind weights at 15.
    const values = { steps: '70it', evalEvery: 3, levels: 1, rewindStep: '15it', ...opt };
    const clean = run({ ...values, checkpointEvery: 'off' });
    const id = 'replicate_0/level_0/main';
    assert.equal(clean.spec(id).keepRewind, true);
    runStage(clean.exp, clean.spec(id), options(clean.exp, context));

    const r = run({ ...values, checkpointEvery: '20it' });
    const dir = path.join(r.exp.runDir, id);
    // A crash (an error out of the progress callback) at the evaluation of iteration 48: the steps since the checkpoint at 40 are lost.
    assert.throws(() => runStage(r.exp, r.spec(id), options(r.exp, context, {
      onProgress: (p) => { if (p.point.iteration === 48) throw new Error('crash'); },
    })), /crash/);
    assert.equal(checkpointIteration(dir), 40);
    assert.ok(!fs.existsSync(path.join(dir, FILES.done)));
    const notes: string[] = [];
    const { skipped } = runStage(r.exp, r.spec(id), options(r.exp, context, { onNotice: (m) => notes.push(m) }));
    assert.equal(skipped, false);
    assert.deepEqual(notes, [`stage ${id}: resuming from its checkpoint at iteration 40 of 70`]);
    sameStage(clean.exp, r.exp, id);
    assert.ok(fs.existsSync(path.join(dir, FILES.rewind)));
  });

  test(`sparse-MLP program, ${optimizer}: a pruned level rewound to step 15, stopped on request, resumes to the uninterrupted stage's bytes`, () => {
    const context = resolveContext({ sparse: 'on', threads: 2 }, {});
    const values = { steps: '60it', evalEvery: 10, levels: 1, rewindStep: '15it', ...opt };
    const clean = run({ ...values, checkpointEvery: 'off' });
    const dense = 'replicate_0/level_0/main', id = 'replicate_0/level_1/main';
    for (const s of [dense, id]) runStage(clean.exp, clean.spec(s), options(clean.exp, context));

    const r = run({ ...values, checkpointEvery: '1ep' });
    runStage(r.exp, r.spec(dense), options(r.exp, context));
    const dir = path.join(r.exp.runDir, id);
    // Runs of steps from 15: to 20, 30, 40 (checkpoints at each epoch's end), then the stop at 40 (the 4th question).
    assert.throws(() => runStage(r.exp, r.spec(id), options(r.exp, context, { stopRequested: stopAt(4) })), /stopped by TEST at a safe point/);
    assert.equal(checkpointIteration(dir), 40);
    assert.deepEqual(fs.readdirSync(dir).filter(isCheckpointFile).sort(), ['checkpoint-40.safetensors', CHECKPOINT_JSON], 'one checkpoint at a time');
    runStage(r.exp, r.spec(id), options(r.exp, context));
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, FILES.done), 'utf8')).program, 'sparse_mlp');
    sameStage(clean.exp, r.exp, id);
    sameStage(clean.exp, r.exp, dense);
  });
}

test('a stage whose branch trains again after its training (stability) resumes that from the end of the stage\'s training', () => {
  const context = resolveContext({ threads: 2 }, {});
  const values = { steps: '30it', evalEvery: 10, levels: 1, branches: ['stability'] };
  const clean = run({ ...values, checkpointEvery: 'off' });
  const ids = ['replicate_0/level_0/main', 'replicate_0/level_1/main', 'replicate_0/level_1/stability'];
  for (const s of ids) runStage(clean.exp, clean.spec(s), options(clean.exp, context));

  const r = run({ ...values, checkpointEvery: '25it' });
  for (const s of ids.slice(0, 2)) runStage(r.exp, r.spec(s), options(r.exp, context));
  const id = ids[2], dir = path.join(r.exp.runDir, id);
  // Stopped during the second copy's training: the stage's own is checkpointed at its end.
  let second = false;
  assert.throws(() => runStage(r.exp, r.spec(id), options(r.exp, context, {
    onProgress: (p) => { if (p.stage !== 'stability') second = true; },
    stopRequested: () => (second ? 'TEST' : null),
  })), /stopped by TEST/);
  assert.equal(checkpointIteration(dir), 30);
  const notes: string[] = [];
  runStage(r.exp, r.spec(id), options(r.exp, context, { onNotice: (m) => notes.push(m) }));
  assert.deepEqual(notes, [`stage ${id}: resuming from its checkpoint at iteration 30 of 30`]);
  for (const s of ids) sameStage(clean.exp, r.exp, s);
});

test('a damaged checkpoint is a clear error naming what to delete; one made with other run settings is ignored with a warning', () => {
  const values = { steps: '40it', evalEvery: 10, levels: 1, checkpointEvery: '10it' };
  const id = 'replicate_0/level_0/main';
  const clean = run({ ...values, checkpointEvery: 'off' });
  runStage(clean.exp, clean.spec(id), options(clean.exp, resolveContext({ threads: 2 }, {})));

  const r = run(values);
  const dir = path.join(r.exp.runDir, id);
  assert.throws(() => runStage(r.exp, r.spec(id), options(r.exp, resolveContext({ threads: 2 }, {}), { stopRequested: stopAt(3) })), /stopped by TEST/);
  assert.equal(checkpointIteration(dir), 20);
  const tensors = path.join(dir, 'checkpoint-20.safetensors'), json = path.join(dir, CHECKPOINT_JSON);
  const again = () => runStage(r.exp, r.spec(id), options(r.exp, resolveContext({ threads: 2 }, {})));
  const damaged = (what: RegExp) => assert.throws(again, (e: Error) => {
    assert.match(e.message, new RegExp(`^the checkpoint in ${escape(dir)} is damaged: `));
    assert.match(e.message, what);
    assert.match(e.message, new RegExp(`Delete ${escape(json)} to train the stage from its start$`));
    return e.name === 'LthError';
  });

  const bytes = fs.readFileSync(tensors);
  const flipped = Buffer.from(bytes);
  flipped[bytes.length - 5] ^= 0x40;
  fs.writeFileSync(tensors, flipped);
  damaged(/checkpoint-20.safetensors has changed \(its SHA-256 differs from the one in checkpoint.json\)/);
  fs.rmSync(tensors);
  damaged(/checkpoint-20.safetensors is missing/);
  fs.writeFileSync(tensors, bytes);
  const text = fs.readFileSync(json, 'utf8');
  fs.writeFileSync(json, text.slice(0, text.length / 2));
  damaged(/checkpoint.json is not valid JSON/);
  fs.writeFileSync(json, JSON.stringify({ ...JSON.parse(text), curve: 'none' }));
  damaged(/checkpoint.json lacks a field or has one of the wrong type/);
  // Deleting checkpoint.json, as the message says, trains the stage from its start.
  fs.rmSync(json);
  again();
  sameStage(clean.exp, r.exp, id);

  // A checkpoint made with 1 thread, found by a process with 2: ignored, the stage trains from its start to that process's bytes.
  const other = run(values);
  const otherDir = path.join(other.exp.runDir, id);
  assert.throws(() => runStage(other.exp, other.spec(id), options(other.exp, resolveContext({ threads: 1 }, {}), { stopRequested: stopAt(3) })), /stopped by TEST/);
  const warnings: Array<[string, boolean]> = [];
  runStage(other.exp, other.spec(id), options(other.exp, resolveContext({ threads: 2 }, {}), { onNotice: (m, w) => warnings.push([m, w]) }));
  assert.deepEqual(warnings, [[`stage ${id}: its checkpoint is ignored and the stage trains from its start, since it was made with numerics backend=native simd=${context().simd} threads=1 sparse=auto fused=auto (now backend=native simd=${context().simd} threads=2 sparse=auto fused=auto); to resume it instead, stop now and run with the settings it was made with`, true]]);
  assert.ok(!fs.readdirSync(otherDir).some(isCheckpointFile));
  sameStage(clean.exp, other.exp, id);
  resolveContext({}, {});
});

const context = () => resolveContext({}, {}).settings;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('an early-bird search\'s dense level 0, stopped after a checkpoint, resumes to the uninterrupted stage\'s bytes', () => {
  const context = resolveContext({ threads: 2 }, {});
  const values = { steps: '60it', evalEvery: 10, levels: 1, earlyBird: true, earlyBirdEvery: '10it' };
  const clean = run({ ...values, checkpointEvery: 'off' });
  const id = 'replicate_0/level_0/main';
  runStage(clean.exp, clean.spec(id), options(clean.exp, context));

  const r = run({ ...values, checkpointEvery: '20it' });
  const dir = path.join(r.exp.runDir, id);
  // Runs of steps to 10, 20 (a checkpoint), then the stop at the third question.
  assert.throws(() => runStage(r.exp, r.spec(id), options(r.exp, context, { stopRequested: stopAt(3) })), /stopped by TEST at a safe point/);
  assert.ok(checkpointIteration(dir) !== null);
  runStage(r.exp, r.spec(id), options(r.exp, context));
  sameStage(clean.exp, r.exp, id);
});
