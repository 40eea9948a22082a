/**
 * Structured pruning in a lottery: LeNet on real MNIST with neuron_l1 loses 20% of each
 * hidden layer's neurons a level, its masks stay structured, its pruned levels (and their
 * reinit control) train on the compact program, and what they save is in the full
 * network's shapes with zeros at the removed neurons; a strategy the model cannot use is
 * refused before anything runs. train() on structured masks: the compact program, its
 * evaluation thread giving exactly the synchronous points, and FLOPs of the compact size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import { keptUnits, unitChain, zeroInputsFrom, zeroUnit } from '../nn/compact.js';
import { train, type TrainOptions } from '../training/train.js';
import { FILES, stageDir } from '../store/layout.js';
import { loadSafetensors } from '../store/safetensors.js';
import { resolveLottery } from './hparams.js';
import { runLottery } from './runner.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-structured-'));
const load = (dir: string, file: string) => new Map([...loadSafetensors(path.join(dir, file))].map(([n, t]) => [n, t.data]));

test('a neuron_l1 lottery on MNIST: whole neurons a level, the compact program, full-size files with zeros at removed neurons', () => {
  const root = tmp();
  const { runDir, summary } = runLottery(resolveLottery({ strategy: 'neuron_l1', steps: '40it', evalEvery: 20, levels: 2, branches: ['reinit'], root }));
  assert.equal(summary.complete, true);
  const chain = unitChain(getModel('lenet_300_100').build());
  const expected = [[300, 100, 10], [240, 80, 10], [192, 64, 10]];
  for (let k = 0; k <= 2; k++) {
    for (const branch of k === 0 ? ['main'] : ['main', 'reinit']) {
      const dir = stageDir(runDir, 0, k, branch);
      const mask = load(dir, FILES.mask), final = load(dir, FILES.final);
      const kept = keptUnits(chain, mask);
      assert.ok(kept, `level ${k} ${branch}: structured`);
      assert.deepEqual(kept.map((u) => u.reduce((a, v) => a + v, 0)), expected[k], `level ${k} ${branch}: neurons`);
      const done = JSON.parse(fs.readFileSync(path.join(dir, FILES.done), 'utf8'));
      assert.equal(done.program, k === 0 ? 'dense_mlp' : 'compact', `level ${k} ${branch}: program`);
      assert.deepEqual(final.get('fc1.weight')!.length, 300 * 784, 'full size on disk');
      for (const [name, m] of mask) assert.ok(final.get(name)!.every((v, i) => m[i] !== 0 || Object.is(v, 0)), `level ${k} ${branch} ${name}: zero where pruned`);
      chain.forEach((l, i) => {
        const bias = final.get(`${l.path}.bias`)!;
        assert.ok(bias.every((v, j) => kept[i][j] === 1 || v === 0), `level ${k} ${branch} ${l.path}: removed neurons' biases zero`);
      });
    }
  }
});

test('a structured strategy the model has no layers for is refused before anything runs', () => {
  const root = tmp();
  assert.throws(() => resolveLottery({ strategy: 'channel_l1', root }), { name: 'LthError', message: 'channel_l1: lenet_300_100 has no hidden convolution to remove channels from' });
  assert.deepEqual(fs.readdirSync(root), []);
});

test('train() on LeNet at 25% of its hidden neurons: the compact program, background evaluation as synchronous, FLOPs of 784-75-25-10', () => {
  const data = getDataset('mnist').load(undefined, 0);
  const options = (backgroundEval: boolean): TrainOptions => {
    const model = getModel('lenet_300_100').build();
    model.initialize(new Rng(0, 'init'));
    const chain = unitChain(model);
    const masks = new Map(model.prunableNames().map((n) => [n, new Float32Array(model.parameter(n).size).fill(1)]));
    chain.forEach((l, i) => {
      if (l.output) return;
      for (let j = l.units / 4; j < l.units; j++) {
        zeroUnit(masks.get(l.weight)!, l, j);
        zeroInputsFrom(masks.get(chain[i + 1].weight)!, chain[i + 1], j);
      }
    });
    return {
      model, masks, data, iterations: 30, batchSize: 60, seed: 3, evalEvery: 2, optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 },
      backgroundEval, context: resolveContext({ threads: 2 }, {}),
    };
  };
  const bg = train(options(true)), sync = train(options(false));
  assert.deepEqual([bg.program, bg.backgroundEval, sync.program], ['compact', true, 'compact']);
  assert.deepEqual(bg.curve, sync.curve);
  // A step: forward, weight gradient and (but the first layer) input gradient, 2 FLOPs a MAC, per sample.
  const perSample = 2 * (2 * 784 * 75 + 3 * 75 * 25 + 3 * 25 * 10);
  assert.equal(bg.flops.actual, 30 * 60 * perSample);
  resolveContext({}, {});
});
