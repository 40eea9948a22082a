import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveContext } from '../backend/index.js';
import { LTH_VERSION } from '../core/version.js';
import { countOnes, layerCounts } from '../pruning/mask.js';
import { FILES, stageDir } from '../store/layout.js';
import { loadSafetensors } from '../store/safetensors.js';
import { hashOf } from '../core/hparams.js';
import { resolveLottery, runHash, spelledRunIdentity } from './hparams.js';
import { runExperiment, runLottery } from './runner.js';
import { experimentOf } from './stage.js';
import { experimentAt, runOf, verifyRun } from './verify.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-lottery-'));
const load = (dir: string, file: string) => new Map([...loadSafetensors(path.join(dir, file))].map(([n, t]) => [n, t.data]));

test('IMP on real MNIST: masks shrink, each level starts from θ0 ⊙ mask, pruned weights stay zero, controls', () => {
  const root = tmp();
  const h = resolveLottery({ steps: '40it', evalEvery: 20, levels: 3, branches: ['reinit', 'random_prune'], root });
  const { runDir, summary } = runLottery(h);
  assert.equal(summary.complete, true);
  const theta0 = load(stageDir(runDir, 0, 0, 'main'), FILES.init);
  let prevMask = load(stageDir(runDir, 0, 0, 'main'), FILES.mask);
  for (let k = 1; k <= 3; k++) {
    const main = stageDir(runDir, 0, k, 'main');
    const mask = load(main, FILES.mask);
    const init = load(main, FILES.init);
    const final = load(main, FILES.final);
    for (const [name, m] of mask) {
      const prev = prevMask.get(name)!;
      for (let i = 0; i < m.length; i++) assert.ok(m[i] <= prev[i], `level ${k} ${name}: masks only shrink`);
      const t0 = theta0.get(name)!, w0 = init.get(name)!, wf = final.get(name)!;
      for (let i = 0; i < m.length; i++) {
        // Bitwise: the level starts from exactly θ0 ⊙ mask, and pruned weights are still exactly zero after training.
        assert.ok(Object.is(w0[i], m[i] === 0 ? 0 : t0[i]), `level ${k} ${name}[${i}] init`);
        if (m[i] === 0) assert.ok(Object.is(wf[i], 0), `level ${k} ${name}[${i}] pruned weight trained to ${wf[i]}`);
      }
    }
    // Biases are never pruned and start from θ0.
    assert.deepEqual(init.get('fc1.bias'), theta0.get('fc1.bias'));
    const expected = (265200 * 0.8 ** k + 1000 * 0.9 ** k) / 266200;
    assert.ok(Math.abs(summary.replicates[0].levels[k].density - expected) < 2e-5);

    const reinit = stageDir(runDir, 0, k, 'reinit');
    assert.deepEqual(load(reinit, FILES.mask), mask, 'reinit keeps the mask');
    const reinitInit = load(reinit, FILES.init).get('fc1.weight')!;
    let same = 0;
    for (let i = 0; i < reinitInit.length; i++) if (mask.get('fc1.weight')![i] !== 0 && reinitInit[i] === init.get('fc1.weight')![i]) same++;
    assert.equal(same, 0, 'reinit draws a fresh θ0');

    const randomDir = stageDir(runDir, 0, k, 'random_prune');
    const randomMask = load(randomDir, FILES.mask);
    assert.deepEqual(layerCounts(randomMask), layerCounts(mask), 'random_prune keeps per-layer counts');
    assert.notDeepEqual(randomMask.get('fc1.weight'), mask.get('fc1.weight'));
    const randomInit = load(randomDir, FILES.init).get('fc2.weight')!;
    const rm = randomMask.get('fc2.weight')!;
    for (let i = 0; i < rm.length; i++) assert.ok(Object.is(randomInit[i], rm[i] === 0 ? 0 : theta0.get('fc2.weight')![i]));
    prevMask = mask;
  }
  assert.equal(countOnes(prevMask.get('fc3.weight')!), Math.round(Math.round(Math.round(1000 * 0.9) * 0.9) * 0.9));
  // Summary shape: branches per level, aggregate stats.
  const lvl2 = summary.replicates[0].levels[2];
  assert.ok(lvl2.branches.reinit && lvl2.branches.random_prune);
  assert.equal(summary.aggregate.length, 4);
  assert.equal(summary.aggregate[1].main.earlyStopTestAccuracy.n, 1);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(runDir, FILES.summary), 'utf8')), summary);

  // Running the same command again trains nothing and gives the same summary.
  let trained = 0;
  const again = runLottery(h, { onStage: (_s, skipped) => { if (!skipped) trained++; } });
  assert.equal(trained, 0);
  assert.deepEqual(again.summary, summary);
});

test('rewinding to a later step resets survivors to the dense run at that step', () => {
  const root = tmp();
  const h = resolveLottery({ steps: '30it', evalEvery: 10, levels: 1, rewindStep: '10it', root });
  const { runDir } = runLottery(h);
  const rewind = load(stageDir(runDir, 0, 0, 'main'), FILES.rewind);
  const theta0 = load(stageDir(runDir, 0, 0, 'main'), FILES.init);
  const init1 = load(stageDir(runDir, 0, 1, 'main'), FILES.init);
  const mask1 = load(stageDir(runDir, 0, 1, 'main'), FILES.mask);
  assert.notDeepEqual(rewind.get('fc1.weight'), theta0.get('fc1.weight'));
  const w = init1.get('fc2.weight')!, m = mask1.get('fc2.weight')!, r = rewind.get('fc2.weight')!;
  for (let i = 0; i < w.length; i++) assert.ok(Object.is(w[i], m[i] === 0 ? 0 : r[i]));
  assert.deepEqual(init1.get('fc1.bias'), rewind.get('fc1.bias'));
});

test('one-shot pruning lands on the target density in one round', () => {
  const root = tmp();
  const h = resolveLottery({ steps: '20it', evalEvery: 10, oneShot: true, targetDensity: 0.2, root });
  assert.equal(h.levels, 1);
  const { summary } = runLottery(h);
  assert.ok(Math.abs(summary.replicates[0].levels[1].density - 0.2) < 1e-4);
});

test('replicates use their own seeds; a finished run can be extended with more replicates', () => {
  const root = tmp();
  const one = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, root }));
  const two = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, replicates: 2, root }));
  assert.equal(one.runDir, two.runDir, 'replicates do not rename the run');
  assert.deepEqual(two.summary.replicates[0], one.summary.replicates[0]);
  assert.equal(two.summary.replicates[1].seed, 1);
  assert.notDeepEqual(two.summary.replicates[1].levels[0].earlyStopValLoss, one.summary.replicates[0].levels[0].earlyStopValLoss);
  assert.equal(two.summary.aggregate[0].main.earlyStopTestAccuracy.n, 2);
});

test('a smaller command on a bigger run trains nothing new and keeps the run\'s recorded levels, replicates and branches', () => {
  const root = tmp();
  const big = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 2, branches: ['reinit'], root }));
  const small = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, branches: ['random_prune'], root }));
  assert.equal(small.runDir, big.runDir);
  const recorded = runOf(big.runDir);
  assert.equal(recorded.levels, 2);
  assert.deepEqual(recorded.branches, ['reinit', 'random_prune']);
  assert.equal(small.summary.levels, 2, 'the summary covers the whole run');
  assert.deepEqual(small.summary.replicates[0].levels.map((l) => Object.keys(l.branches).sort()), [[], ['random_prune', 'reinit'], ['reinit']]);
  assert.equal(small.summary.complete, false, 'level 2 has no random_prune stage yet');
  assert.equal(runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 2, branches: ['reinit', 'random_prune'], root })).summary.complete, true);
});

test('run hash: pinned, ignores fields left at (or set to) their defaults, changes with real changes', () => {
  const base = runHash(resolveLottery({}));
  assert.equal(base, '44136fa355b3678a'); // pinned (sha256 of '{}': every field at its default); renaming runs would orphan them
  assert.equal(runHash(resolveLottery({ lr: 1.2e-3, batchSize: 60, steps: '50000it', seed: 0, rewindStep: '0it', root: '/elsewhere', replicates: 3, branches: ['reinit'], levels: 5 })), base);
  assert.notEqual(runHash(resolveLottery({ lr: 1e-3 })), base);
  assert.notEqual(runHash(resolveLottery({ rewindStep: '500it' })), base);
  assert.notEqual(runHash(resolveLottery({ targetDensity: 0.1, levels: 5 })), runHash(resolveLottery({ targetDensity: 0.1, levels: 6 })));
});

test('run hash: a value that means the default, or one step written two ways, names one run', () => {
  const base = runHash(resolveLottery({}));
  // --rate equal to the model's own rates (LeNet's 0.2, output layer at half).
  assert.equal(runHash(resolveLottery({ rate: 0.2 })), base);
  assert.notEqual(runHash(resolveLottery({ rate: 0.3 })), base);
  // Conv-2: --rate sets the fully connected layers' rate; the model's is 0.2, its conv layers' 0.1 either way.
  assert.equal(runHash(resolveLottery({ model: 'conv2', rate: 0.2 })), runHash(resolveLottery({ model: 'conv2' })));
  assert.notEqual(runHash(resolveLottery({ model: 'conv2', rate: 0.1 })), runHash(resolveLottery({ model: 'conv2' })));
  // cifar_resnet_20: --rate is every layer's, 0.2 by default, with global pruning.
  assert.equal(runHash(resolveLottery({ model: 'cifar_resnet_20', rate: 0.2 })), runHash(resolveLottery({ model: 'cifar_resnet_20' })));
  assert.equal(runHash(resolveLottery({ model: 'cifar_resnet_20', lrSchedule: 'step:80ep, 120ep' })), runHash(resolveLottery({ model: 'cifar_resnet_20' })));
  // Steps: 0ep is 0it, 1ep0it is 1ep, 0050it is 50it.
  assert.equal(runHash(resolveLottery({ rewindStep: '0ep' })), base);
  assert.equal(runHash(resolveLottery({ warmupSteps: '0ep' })), base);
  assert.equal(runHash(resolveLottery({ rewindStep: '1ep0it' })), runHash(resolveLottery({ rewindStep: '1ep' })));
  assert.equal(runHash(resolveLottery({ steps: '0050it' })), runHash(resolveLottery({ steps: '50it' })));
  assert.notEqual(runHash(resolveLottery({ rewindStep: '1ep' })), runHash(resolveLottery({ rewindStep: '600it' })), 'an epoch is not a fixed number of iterations');
  // The record of a run made before schedules existed has neither field.
  const { warmupSteps: _w, lrSchedule: _s, ...older } = resolveLottery({}).training;
  assert.equal(runHash({ ...resolveLottery({}), training: older as ReturnType<typeof resolveLottery>['training'] }), base);
});

test('a run an older version named by its values as spelled keeps its name, and is resumed, not made again', () => {
  const root = tmp();
  const spelled = resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, rate: 0.2, root });
  // What an older version did: the run named by its values as given (rate 0.2 included).
  const old = { h: spelled, runDir: path.join(root, hashOf(spelledRunIdentity(spelled))), identity: spelledRunIdentity(spelled) };
  assert.notEqual(path.basename(old.runDir), runHash(spelled));
  runExperiment(old, {});
  assert.equal(experimentOf(spelled).runDir, old.runDir, 'found under its old name');
  let trained = 0;
  runLottery(spelled, { onStage: (_r, skipped) => { if (!skipped) trained++; } });
  assert.equal(trained, 0, 'every stage was already done');
  assert.deepEqual(fs.readdirSync(root), [path.basename(old.runDir)]);
  assert.deepEqual(verifyRun(old.runDir).map((c) => c.state), ['whole', 'whole']);
  assert.equal(runOf(old.runDir).rate, 0.2);
  // Once a run of the canonical name exists, it is the one both spellings name; the old one is still reached by its directory.
  const canonical = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, root })).runDir;
  assert.equal(path.basename(canonical), runHash(spelled));
  assert.equal(experimentOf(spelled).runDir, canonical);
  assert.equal(experimentAt(old.runDir).runDir, path.resolve(old.runDir));
  assert.deepEqual(experimentAt(old.runDir).identity, spelledRunIdentity(spelled));
});

test('bad lottery hyperparameters are clear errors before any work starts', () => {
  const root = tmp();
  assert.throws(() => resolveLottery({ rate: 0 }), /--rate must be in \(0, 1\), got 0/);
  // A library caller's typo is an error, not a silent default (the CLI refuses unknown flags itself).
  assert.throws(() => resolveLottery({ stepz: '20it' }), { name: 'LthError', message: /resolveLottery: unknown hyperparameter 'stepz' \(did you mean 'steps'\?\)/ });
  assert.throws(() => resolveLottery({ batch_size: 10 }), /unknown hyperparameter 'batch_size' \(did you mean 'batchSize'\?\)/);
  assert.throws(() => resolveLottery({ 'rewind-step': '1ep' }), /unknown hyperparameter 'rewind-step' \(did you mean 'rewindStep'\?\)/);
  assert.throws(() => resolveLottery({ branches: 5 as unknown as string[] }), /branches must be a list of strings \(or one comma-separated string\), got 5/);
  assert.deepEqual(resolveLottery({ branches: 'reinit, random_prune' as unknown as string[] }).branches, ['reinit', 'random_prune'], 'a list as one string, as on the command line');
  assert.throws(() => resolveLottery({ rate: 1 }), /--rate must be in \(0, 1\), got 1/);
  assert.throws(() => resolveLottery({ levels: -1 }), /--levels must be a non-negative integer, got -1/);
  assert.throws(() => resolveLottery({ oneShot: true }), /--one-shot needs --density/);
  assert.throws(() => resolveLottery({ branches: ['reinit', 'invert2'] }), /unknown branch 'invert2'/);
  assert.throws(() => resolveLottery({ lrSchedule: 'step:80ep,40ep' }), /--lr-schedule: milestones must increase, got 80ep,40ep/);
  assert.throws(() => resolveLottery({ lrSchedule: 'linear' }), /--lr-schedule: expected constant, cosine or step:MILESTONES/);
  assert.throws(() => resolveLottery({ warmupSteps: 'soon' }), /--warmup-steps: cannot parse 'soon'/);
  assert.throws(() => resolveLottery({ lrGamma: 0.5 }), /--lr-gamma applies to a step schedule .* no effect with --lr-schedule constant/);
  assert.throws(() => resolveLottery({ momentum: 0.9 }), /--momentum and --weight-decay are SGD's; they have no effect with --optimizer adam/);
  assert.throws(() => runLottery(resolveLottery({ steps: '100it', lrSchedule: 'step:1ep', root })), /--lr-schedule: milestone 1ep \(916 iterations\) is not inside the training budget \(100 iterations\)/);
  assert.throws(() => resolveLottery({ replicates: 0 }), /--replicates must be a positive integer/);
  assert.throws(() => resolveLottery({ rewindStep: 'soon' }), /--rewind-step: cannot parse 'soon'/);
  assert.throws(() => resolveLottery({ model: 'lenet' }), /Unknown model 'lenet'. Known: lenet_300_100/);
  assert.throws(() => runLottery(resolveLottery({ steps: '100it', rewindStep: '1ep', root })), /--rewind-step 1ep \(916 iterations\) must be before the end of the training budget 100it/);
  assert.deepEqual(fs.readdirSync(root), [], 'nothing written');
});

test('each stage records its program, run settings and version; masks keep their shapes on disk', () => {
  const root = tmp();
  const h = resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, root });
  const { runDir } = runLottery(h, { context: resolveContext({ sparse: 'on', threads: 2 }, {}) });
  const dense = JSON.parse(fs.readFileSync(path.join(stageDir(runDir, 0, 0, 'main'), FILES.done), 'utf8'));
  const pruned = JSON.parse(fs.readFileSync(path.join(stageDir(runDir, 0, 1, 'main'), FILES.done), 'utf8'));
  assert.equal(dense.program, 'dense_mlp', 'nothing pruned: no masks, the dense-MLP program');
  assert.equal(pruned.program, 'sparse_mlp', 'every layer masked and sparse: the sparse-MLP program');
  assert.deepEqual(pruned.numerics, { backend: dense.numerics.backend, simd: dense.numerics.simd, threads: 2, sparse: 'on', fused: 'auto' });
  assert.equal(pruned.lth, LTH_VERSION);
  const mask = loadSafetensors(path.join(stageDir(runDir, 0, 1, 'main'), FILES.mask));
  assert.deepEqual(mask.get('fc1.weight')!.shape, [300, 784]);
  assert.deepEqual(mask.get('fc3.weight')!.shape, [10, 100]);
  resolveContext({}, {});
});

test('the finetune control starts from the trained weights it was pruned from, under the level\'s mask', () => {
  const root = tmp();
  const { runDir } = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 2, branches: ['finetune'], root }));
  for (const k of [1, 2]) {
    const trained = load(stageDir(runDir, 0, k - 1, 'main'), FILES.final);
    const mask = load(stageDir(runDir, 0, k, 'main'), FILES.mask);
    const init = load(stageDir(runDir, 0, k, 'finetune'), FILES.init);
    assert.deepEqual(load(stageDir(runDir, 0, k, 'finetune'), FILES.mask), mask, 'the ticket\'s mask');
    for (const [n, w] of trained) {
      const m = mask.get(n), got = init.get(n)!;
      for (let i = 0; i < w.length; i++) assert.ok(Object.is(got[i], m && m[i] === 0 ? 0 : w[i]), `level ${k} ${n}[${i}]`);
    }
  }
  assert.throws(() => resolveLottery({ atInit: true, strategy: 'snip', densities: ['0.5'], branches: ['finetune'] }), /no trained weights of this run to fine-tune/);
});

test('branches a run cannot train are refused with its other hyperparameters, before anything trains', () => {
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ atInit: true, strategy: 'snip', densities: ['0.5'], branches: ['lr_rewind'] }, /--branches lr_rewind: levels pruned at initialisation \(--at-init\) have no trained weights of this run to retrain/],
    [{ transferFrom: 'elsewhere', branches: ['finetune'] }, /--branches finetune: levels taken from another run \(--transfer-from\) have no trained weights of this run to fine-tune/],
    [{ transferFrom: 'elsewhere', branches: ['lr_rewind'] }, /--branches lr_rewind: levels taken from another run/],
    [{ transferFrom: 'elsewhere', branches: ['invert'] }, /--branches invert: levels taken from another run \(--transfer-from\) were not pruned by this run's strategy/],
    [{ model: 'cifar_resnet_20', dataset: 'cifar10', branches: ['small_dense'] }, /--branches small_dense: cifar_resnet_20 has no hidden widths to shrink; the baseline needs a model with them \(lenet_300_100, conv2,/],
    [{ model: 'text_transformer', branches: ['small_dense'] }, /--branches small_dense: text_transformer has no hidden widths/],
    [{ transferFrom: 'elsewhere', strategy: 'magnitude_global' }, /--transfer-from takes its masks from the other run: do not combine it with --strategy/],
    [{ atInit: true, strategy: 'snip', densities: ['0.000001'] }, /--densities 0.000001 keeps no weight of lenet_300_100's 266,200 prunable weights/],
    [{ levels: 3, targetDensity: 1e-7 }, /--target-density 1e-7 keeps no weight/],
  ];
  for (const [values, message] of refused) assert.throws(() => resolveLottery(values as never), message, JSON.stringify(values));
  // What the same branches can train.
  for (const values of [{ atInit: true, strategy: 'snip', densities: ['0.5'], branches: ['invert', 'small_dense'] }, { branches: ['lr_rewind', 'finetune', 'invert', 'small_dense'] }]) {
    assert.doesNotThrow(() => resolveLottery(values as never));
  }
});
