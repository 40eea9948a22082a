/**
 * Dynamic sparse training and early-bird tickets as a user meets them: `lth train
 * --sparse-train`, the lottery's rigl and set branches and --early-bird, the records they
 * leave (FLOPs, updates, the mask-distance curve, the final masks) and the errors for
 * options that would have no effect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadSafetensors } from '../src/store/safetensors.js';
import { runLth as lth, lastJson } from '../src/cli/testing.js';
import { countOnes as ones } from '../src/pruning/mask.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-dynamic-'));




test('lth train --sparse-train rigl|set: ERK masks at the density, updates, FLOPs below dense, the final mask written', () => {
  for (const method of ['rigl', 'set']) {
    const out = tmp();
    const r = lth(['train', '--sparse-train', method, '--density', '0.1', '--steps', '400it', '--eval-every', '200', '--update-every', '50', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = lastJson(r.stdout) as { flops: { actual: number; dense: number }; sparseTraining: Record<string, number>; program: string; finalTestAccuracy: number };
    assert.equal(s.program, 'sparse_mlp');
    // Updates at 50, 100, ..., 250 (before 0.75 of 400 = 300).
    assert.equal(s.sparseTraining.updates, 5);
    assert.ok(s.sparseTraining.regrown > 0);
    assert.ok(s.flops.actual < 0.2 * s.flops.dense, `${method}: ${s.flops.actual} of ${s.flops.dense}`);
    assert.ok(s.finalTestAccuracy > 0.85, `${method} learns: ${s.finalTestAccuracy}`);
    const recorded = JSON.parse(fs.readFileSync(path.join(out, 'hparams.json'), 'utf8')) as { sparseTrain?: Record<string, unknown> };
    assert.deepEqual(recorded.sparseTrain, { method, density: 0.1, densityRule: 'erk', updateEvery: 50, dropFraction: 0.3, updateEnd: 0.75 }, 'hparams.json records the sparse training');
    const mask = loadSafetensors(path.join(out, 'mask_final.safetensors'));
    const kept = [...mask.values()].reduce((a, t) => a + ones(t.data), 0), total = [...mask.values()].reduce((a, t) => a + t.data.length, 0);
    assert.ok(Math.abs(kept / total - 0.1) < 0.001, `density ${kept / total}`);
    assert.equal(ones(mask.get('fc3.weight')!.data), 1000, 'ERK keeps the small output layer dense');
    assert.ok(ones(mask.get('fc1.weight')!.data) / 235200 < 0.1, 'and the wide first layer sparser');
    // The final weights are zero outside the final mask.
    const weights = loadSafetensors(path.join(out, 'model_final.safetensors'));
    const m = mask.get('fc1.weight')!.data, w = weights.get('fc1.weight')!.data;
    assert.ok(w.every((x, i) => m[i] !== 0 || x === 0));
  }
});

test('the lottery: rigl and set at each level\'s per-layer counts, an early-bird search at every level but the last, FLOPs on every stage', () => {
  const rootDir = tmp();
  const r = lth(['lottery', '--levels', '2', '--steps', '600it', '--eval-every', '100', '--branches', 'rigl,set', '--update-every', '50',
    '--early-bird', '--early-bird-every', '100it', '--early-bird-epsilon', '0.5', '--root', rootDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const run = path.join(rootDir, fs.readdirSync(rootDir)[0]);
  const done = (k: number, b: string) => JSON.parse(fs.readFileSync(path.join(run, `replicate_0/level_${k}/${b}/done.json`), 'utf8'));
  for (const k of [0, 1]) {
    const d = done(k, 'main');
    assert.ok(d.earlyBird, `level ${k} searched`);
    assert.equal(d.earlyBird.epsilon, 0.5);
    assert.ok(d.earlyBird.points.length >= 1);
    // ε = 0.5: the first comparison is within it, at the second draw (200).
    assert.equal(d.earlyBird.drawnAt, 200, `level ${k}: ${JSON.stringify(d.earlyBird)}`);
    assert.equal(d.earlyStopIteration <= 200, true);
    const metrics = fs.readFileSync(path.join(run, `replicate_0/level_${k}/main/metrics.csv`), 'utf8').trim().split('\n');
    assert.equal(metrics[metrics.length - 1].split(',')[0], '200', 'the training stopped there');
    assert.ok(d.flops.dense < 600 * 60 * 2 * (2 * 235200 + 3 * 30000 + 3 * 1000), 'FLOPs of 200 iterations, not 600');
  }
  assert.equal(done(2, 'main').earlyBird, undefined, 'the last level trains its whole budget');
  for (const b of ['rigl', 'set']) {
    for (const k of [1, 2]) {
      const d = done(k, b);
      assert.equal(d.sparseTraining.method, b);
      assert.equal(d.sparseTraining.updates, 8, '50, 100, ..., 400 (before 450)');
      const level = loadSafetensors(path.join(run, `replicate_0/level_${k}/main/mask.safetensors`));
      const start = loadSafetensors(path.join(run, `replicate_0/level_${k}/${b}/mask.safetensors`));
      const final = loadSafetensors(path.join(run, `replicate_0/level_${k}/${b}/mask_final.safetensors`));
      for (const [n, t] of level) {
        assert.equal(ones(start.get(n)!.data), ones(t.data), `${b} level ${k} ${n}: the ticket's count at the start`);
        assert.equal(ones(final.get(n)!.data), ones(t.data), `${b} level ${k} ${n}: and at the end`);
      }
      assert.notDeepEqual(final.get('fc1.weight')!.data, start.get('fc1.weight')!.data, 'the mask moved');
    }
  }
  assert.ok(done(0, 'main').flops.actual > 0);
});

test('options that would have no effect are errors naming what to add', () => {
  const cases: Array<[string[], RegExp]> = [
    [['train', '--density', '0.1'], /--density and --density-rule set the sparsity of --sparse-train; add --sparse-train set\|rigl/],
    [['train', '--sparse-train', 'rigl'], /--sparse-train rigl needs --density D/],
    [['train', '--sparse-train', 'rigl', '--density', '1.5'], /--density must be in \(0, 1\), got 1.5/],
    [['train', '--update-every', '50'], /--update-every: they set how --sparse-train updates its masks/],
    [['train', '--sparse-train', 'magic', '--density', '0.1'], /--sparse-train: expected one of set, rigl, got 'magic'/],
    [['train', '--sparse-train', 'set', '--density', '0.1', '--drop-fraction', '1'], /--drop-fraction must be in \(0, 1\), got 1/],
    [['lottery', '--update-every', '50', '--dry-run'], /--update-every: they set how the rigl and set branches update their masks; add --branches rigl or set/],
    [['lottery', '--early-bird-epsilon', '0.2', '--dry-run'], /--early-bird-epsilon and --early-bird-every set the early-bird search; add --early-bird/],
    [['lottery', '--early-bird', '--early-bird-epsilon', '0', '--dry-run'], /--early-bird-epsilon must be in \(0, 1\), got 0/],
    [['lottery', '--early-bird', '--at-init', '--strategy', 'snip', '--densities', '0.5', '--dry-run'], /--early-bird stops training once the pruned mask settles/],
    [['lottery', '--early-bird', '--levels', '0', '--dry-run'], /--early-bird needs at least one pruned level/],
    [['lottery', '--early-bird', '--early-bird-every', 'often', '--dry-run'], /--early-bird-every: cannot parse 'often'/],
    [['lottery', '--early-bird', '--early-bird-every', '0it', '--dry-run'], /--early-bird-every 0it is less than one iteration/],
    [['lottery', '--early-bird', '--early-bird-every', '500it', '--steps', '300it', '--dry-run'], /--early-bird-every 500it \(500 iterations\) draws fewer than two masks after the rewind step in the 300-iteration budget/],
    [['lottery', '--early-bird', '--early-bird-every', '100it', '--rewind-step', '200it', '--steps', '300it', '--dry-run'], /draws fewer than two masks after the rewind step/],
    [['lottery', '--early-bird', '--strategy', 'snip', '--dry-run'], /--early-bird stops training once the pruned mask settles: snip scores the weights at θ0/],
    [['lottery', '--branches', 'rigl', '--update-every', '1000', '--steps', '300it', '--dry-run'], /--update-every 1000 leaves no drop\/regrow update before --update-end 0.75 of the 300-iteration budget \(iteration 225\)/],
    [['train', '--sparse-train', 'rigl', '--density', '0.1', '--update-every', '500', '--steps', '100it'], /--update-every 500 leaves no drop\/regrow update before --update-end 0.75 of the 100-iteration budget/],
  ];
  for (const [args, message] of cases) {
    const r = lth(args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack for ${args.join(' ')}`);
  }
});
