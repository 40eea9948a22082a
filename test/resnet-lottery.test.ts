/**
 * End to end through the CLI: a cifar_resnet_20 lottery on a tiny CIFAR-10 directory in the
 * official binary format (20 records per file: 50 train / 50 validation / 20 test), 2
 * levels of 4 iterations rewound to iteration 2, with the model's own defaults (SGD with
 * momentum and weight decay, global magnitude pruning ignoring fc) but a step schedule and
 * warmup that fit the budget. Checked from the files: each level
 * removes 20% of the remaining pooled conv weights and none of fc, masks only shrink, every
 * level starts from the rewind weights ⊙ mask with the batch-norm running statistics of
 * the rewind point, and the statistics move while training (one tracked batch a step).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lastJson, runLth } from '../src/cli/testing.js';
import { writeCifarDir } from '../src/data/testing.js';
import { countOnes } from '../src/pruning/mask.js';
import { FILES, stageDir } from '../src/store/layout.js';
import { loadSafetensors } from '../src/store/safetensors.js';

const load = (dir: string, file: string) => new Map([...loadSafetensors(path.join(dir, file))].map(([n, t]) => [n, t.data]));

test('lth lottery --model cifar_resnet_20: 2 levels, global 20% without fc, each level from the rewind point ⊙ mask, BN statistics included', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-resnet-lottery-'));
  writeCifarDir(path.join(tmp, 'cifar-10-batches-bin'), 20);
  const r = runLth(['lottery', '--model', 'cifar_resnet_20', '--data-dir', tmp, '--steps', '4it', '--batch-size', '10', '--eval-every', '2',
    '--lr-schedule', 'step:3it', '--warmup-steps', '1it', '--levels', '2', '--rewind-step', '2it', '--root', path.join(tmp, 'runs'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { runDir } = lastJson(r.stdout) as { runDir: string };
  const hparams = JSON.parse(fs.readFileSync(path.join(runDir, 'hparams.json'), 'utf8'));
  assert.deepEqual([hparams.identity.strategy, hparams.identity.ignore, hparams.identity.momentum], ['magnitude_global', ['fc.weight'], 0.9]);

  const dense = stageDir(runDir, 0, 0, 'main');
  const theta0 = load(dense, FILES.init), rewind = load(dense, FILES.rewind);
  assert.deepEqual([theta0.get('bn.num_batches_tracked')![0], theta0.get('bn.running_var')![0]], [0, 1], 'θ0 holds the initial statistics');
  assert.equal(rewind.get('blocks.4.bn2.num_batches_tracked')![0], 2, 'the rewind point holds the statistics of iteration 2');
  assert.equal(load(dense, FILES.final).get('bn.num_batches_tracked')![0], 4);

  let prev = load(dense, FILES.mask);
  const pooled = (m: Map<string, Float32Array>) => [...m].filter(([n]) => n !== 'fc.weight').reduce((a, [, v]) => a + countOnes(v), 0);
  assert.equal(pooled(prev), 270896 - 640);
  for (let k = 1; k <= 2; k++) {
    const dir = stageDir(runDir, 0, k, 'main');
    const mask = load(dir, FILES.mask), init = load(dir, FILES.init), final = load(dir, FILES.final);
    assert.ok(![...mask.keys()].some((n) => /bn|shortcut\.1/.test(n)), 'batch norm has no mask');
    assert.equal(pooled(mask), pooled(prev) - Math.round(0.2 * pooled(prev)), `level ${k}: 20% of the pooled remaining weights`);
    assert.ok(mask.get('fc.weight')!.every((v) => v === 1), 'fc is ignored');
    for (const [n, t0] of rewind) {
      const m = mask.get(n), before = prev.get(n), w0 = init.get(n)!;
      for (let i = 0; i < t0.length; i++) {
        if (m && m[i] > before![i]) assert.fail(`level ${k} ${n}[${i}]: mask grew`);
        if (!Object.is(w0[i], m && m[i] === 0 ? 0 : t0[i])) assert.fail(`level ${k} ${n}[${i}]: ${w0[i]} is not the rewind point ⊙ mask`);
      }
    }
    assert.equal(final.get('blocks.8.bn1.num_batches_tracked')![0], 4, 'trained 2 steps from the rewind point');
    assert.notDeepEqual(final.get('blocks.8.bn1.running_mean'), init.get('blocks.8.bn1.running_mean'));
    prev = mask;
  }
  const summary = lastJson(r.stdout) as { replicates: Array<{ levels: Array<{ earlyStopValLoss: number }> }> };
  for (const level of summary.replicates[0].levels) assert.ok(Number.isFinite(level.earlyStopValLoss), 'finite validation loss');
});
