/**
 * End to end: a short lottery run of Conv-2 on a tiny synthetic CIFAR-10 directory (20
 * records per file: 100 train → 50 train / 50 validation, 20 test) through
 * resolveLottery/runLottery with --levels 2: the per-layer counts follow the conv 10% /
 * fc 20% / output 10% ladder exactly, masks shrink, every level starts from θ0 ⊙ mask
 * (bitwise, conv weights included) and pruned weights stay exactly zero after training.
 * Most of its time is the two pruning rounds (layerwise magnitude over 4.3M weights), not
 * the 3 training steps of batch 10.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import { countOnes, layerCounts } from '../src/pruning/mask.js';
import { FILES, stageDir } from '../src/store/layout.js';
import { loadSafetensors } from '../src/store/safetensors.js';
import { writeCifarDir } from '../src/data/testing.js';

const load = (dir: string, file: string) => new Map([...loadSafetensors(path.join(dir, file))].map(([n, t]) => [n, t.data]));

test('Conv-2 lottery on synthetic CIFAR-10: 2 levels, exact conv/fc/output ladder, resets to θ0 ⊙ mask', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-conv-lottery-'));
  const dataDir = path.join(tmp, 'cifar-10-batches-bin');
  writeCifarDir(dataDir, 20);
  const h = resolveLottery({ model: 'conv2', dataDir: tmp, steps: '3it', batchSize: 10, evalEvery: 2, levels: 2, root: path.join(tmp, 'runs') });
  assert.equal(h.training.dataset, 'cifar10');
  assert.equal(h.training.lr, 2e-4);
  const { runDir, summary } = runLottery(h);
  assert.equal(summary.complete, true);

  const rates: Record<string, number> = { 'conv1.weight': 0.1, 'conv2.weight': 0.1, 'fc1.weight': 0.2, 'fc2.weight': 0.2, 'fc3.weight': 0.1 };
  const theta0 = load(stageDir(runDir, 0, 0, 'main'), FILES.init);
  let prev = load(stageDir(runDir, 0, 0, 'main'), FILES.mask);
  let expected = layerCounts(prev);
  assert.deepEqual([...expected.values()], [1728, 36864, 4194304, 65536, 2560]);
  for (let k = 1; k <= 2; k++) {
    const dir = stageDir(runDir, 0, k, 'main');
    const mask = load(dir, FILES.mask), init = load(dir, FILES.init), final = load(dir, FILES.final);
    expected = new Map([...expected].map(([n, c]) => [n, c - Math.round(rates[n] * c)]));
    assert.deepEqual(layerCounts(mask), expected, `level ${k} per-layer counts`);
    let kept = 0, total = 0;
    for (const [n, m] of mask) {
      kept += countOnes(m);
      total += m.length;
      const before = prev.get(n)!, t0 = theta0.get(n)!, w0 = init.get(n)!, wf = final.get(n)!;
      for (let i = 0; i < m.length; i++) {
        if (m[i] > before[i]) assert.fail(`level ${k} ${n}[${i}]: mask grew`);
        if (!Object.is(w0[i], m[i] === 0 ? 0 : t0[i])) assert.fail(`level ${k} ${n}[${i}]: init ${w0[i]} is not θ0 ⊙ mask`);
        if (m[i] === 0 && !Object.is(wf[i], 0)) assert.fail(`level ${k} ${n}[${i}]: pruned weight trained to ${wf[i]}`);
      }
    }
    assert.equal(summary.replicates[0].levels[k].density, kept / total);
    // Closed form of the ladder: (38,592·0.9^k + 4,259,840·0.8^k + 2,560·0.9^k) / 4,300,992.
    const formula = (38592 * 0.9 ** k + 4259840 * 0.8 ** k + 2560 * 0.9 ** k) / 4300992;
    assert.ok(Math.abs(kept / total - formula) < 2e-5, `level ${k}: ${kept / total} vs ${formula}`);
    assert.deepEqual(init.get('conv2.bias'), theta0.get('conv2.bias'), 'biases are not pruned and start from θ0');
    // Training moved the surviving conv weights.
    assert.notDeepEqual(final.get('conv1.weight'), init.get('conv1.weight'));
    prev = mask;
  }
  for (const level of summary.replicates[0].levels) {
    assert.ok(Number.isFinite(level.earlyStopValLoss), 'finite validation loss');
  }
});

test('lth train --augment crop_flip trains Conv-2 on augmented CIFAR-10 minibatches, reproducibly; without it the weights differ', async () => {
  const { runTraining } = await import('../src/training/run.js');
  const { resolveTraining } = await import('../src/training/hparams.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-augment-'));
  writeCifarDir(path.join(tmp, 'cifar-10-batches-bin'), 20);
  const run = (augment: string, out: string) => {
    runTraining(resolveTraining({ model: 'conv2', dataDir: tmp, steps: '2it', batchSize: 10, evalEvery: 2, augment }), { out: path.join(tmp, out) });
    return load(path.join(tmp, out), 'model_final.safetensors');
  };
  const a = run('crop_flip', 'a'), b = run('crop_flip', 'b'), plain = run('none', 'c');
  assert.deepEqual(a, b, 'the same augmented bytes every run');
  assert.notDeepEqual(a.get('conv1.weight'), plain.get('conv1.weight'), 'augmentation changes what is trained on');
});
