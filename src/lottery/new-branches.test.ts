/**
 * The branches that train something other than one network of the run's shape, end to
 * end on real MNIST: small_dense (a narrower dense network placed by its weights),
 * stability (a second copy and the path between them in done.json) and invert at
 * initialisation (SNIP keeping its lowest scores).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FILES, stageDir, readDone } from '../store/layout.js';
import { loadSafetensors } from '../store/safetensors.js';
import { resolveLottery } from './hparams.js';
import { runLottery } from './runner.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-branches-'));
const load = (dir: string, file: string) => loadSafetensors(path.join(dir, file));

test('small_dense and stability beside IMP tickets: sizes, densities and the interpolation path', () => {
  const h = resolveLottery({ steps: '30it', evalEvery: 15, levels: 2, branches: ['small_dense', 'stability'], root: tmp() });
  const { runDir, summary } = runLottery(h);
  assert.equal(summary.complete, true);
  for (const k of [1, 2]) {
    const ticket = readDone(stageDir(runDir, 0, k, 'main'))!;
    const small = readDone(stageDir(runDir, 0, k, 'small_dense'))!;
    const weights = load(stageDir(runDir, 0, k, 'small_dense'), FILES.final);
    const fc1 = weights.get('fc1.weight')!.shape, fc2 = weights.get('fc2.weight')!.shape;
    assert.ok(fc1[0] < 300 && fc2[0] < 100 && fc2[1] === fc1[0], `level ${k}: a narrower chain ${fc1} ${fc2}`);
    // Placed by its weights among the run's: within one hidden neuron's weights of the ticket.
    assert.ok(Math.abs(small.density - ticket.density) * 266200 <= 884, `level ${k}: ${small.density} vs ${ticket.density}`);
    for (const t of load(stageDir(runDir, 0, k, 'small_dense'), FILES.mask).values()) assert.ok(t.data.every((v) => v === 1));

    const stab = readDone(stageDir(runDir, 0, k, 'stability'))!;
    // Copy a is the ticket trained as the main branch trains it; the stage's cost is both copies'.
    assert.equal(stab.finalTestAccuracy, ticket.finalTestAccuracy);
    assert.equal(stab.flops!.actual, 2 * ticket.flops!.actual);
    assert.equal(stab.flops!.dense, 2 * ticket.flops!.dense);
    const a = stab.analysis as { kind: string; errorBarrier: number; orderSeeds: number[]; path: Array<{ alpha: number; testError: number }> };
    assert.equal(a.kind, 'instability');
    assert.equal(a.path.length, 11);
    assert.deepEqual([a.path[0].alpha, a.path[10].alpha], [0, 1]);
    assert.notEqual(a.orderSeeds[0], a.orderSeeds[1]);
    assert.ok(Math.abs(a.path[0].testError - (1 - stab.finalTestAccuracy)) < 1e-9, 'α = 0 is copy a');
    const worst = Math.max(...a.path.map((p) => p.testError));
    assert.ok(Math.abs(a.errorBarrier - (worst - (a.path[0].testError + a.path[10].testError) / 2)) < 1e-12);
  }
});

test('invert at initialisation: SNIP keeping its lowest-scored weights, same density, a different mask', () => {
  const h = resolveLottery({ steps: '10it', evalEvery: 10, strategy: 'snip', atInit: true, densities: ['0.5', '0.1'], branches: ['invert'], root: tmp() });
  const { runDir } = runLottery(h);
  for (const k of [1, 2]) {
    const ticket = load(stageDir(runDir, 0, k, 'main'), FILES.mask), inverted = load(stageDir(runDir, 0, k, 'invert'), FILES.mask);
    let kept = 0, keptBoth = 0, total = 0;
    for (const [n, t] of ticket) {
      const u = inverted.get(n)!.data;
      for (let i = 0; i < t.data.length; i++) {
        kept += u[i];
        keptBoth += u[i] * t.data[i];
        total++;
      }
    }
    assert.equal(kept, Math.round([0.5, 0.1][k - 1] * total), `level ${k}: the level's density`);
    // At 10% the highest and lowest scores are disjoint sets (at 50% they can only meet at ties).
    if (k === 2) assert.equal(keptBoth, 0, 'the lowest 10% of scores share no weight with the highest 10%');
  }
});

test('lr_rewind replays the schedule, finetune trains at its final rate; under a constant rate they are one', () => {
  const stepped = runLottery(resolveLottery({ steps: '30it', evalEvery: 15, levels: 1, optimizer: 'sgd', lr: 0.05, lrSchedule: 'step:10it', lrGamma: 0.01, branches: ['finetune', 'lr_rewind'], root: tmp() })).runDir;
  const constant = runLottery(resolveLottery({ steps: '30it', evalEvery: 15, levels: 1, optimizer: 'sgd', lr: 0.05, branches: ['finetune', 'lr_rewind'], root: tmp() })).runDir;
  const final = (run: string, b: string) => load(stageDir(run, 0, 1, b), FILES.final);
  assert.deepEqual(final(constant, 'finetune'), final(constant, 'lr_rewind'));
  assert.notDeepEqual(final(stepped, 'finetune'), final(stepped, 'lr_rewind'));
  // Both start from level 0's trained weights under the level's mask.
  assert.deepEqual(load(stageDir(stepped, 0, 1, 'finetune'), FILES.init), load(stageDir(stepped, 0, 1, 'lr_rewind'), FILES.init));
});

test('a rewinding run trains its pruned stages from the rewind step to the end of the budget', () => {
  const { runDir } = runLottery(resolveLottery({ steps: '40it', evalEvery: 10, levels: 1, rewindStep: '10it', branches: ['small_dense'], root: tmp() }));
  const iterations = (b: string) => fs.readFileSync(path.join(stageDir(runDir, 0, 1, b), FILES.metrics), 'utf8').split('\n').slice(1).filter(Boolean).map((l) => Number(l.split(',')[0]));
  assert.equal(Math.min(...iterations('main')), 10, 'the ticket starts at the rewind step');
  assert.equal(Math.max(...iterations('main')), 40);
  assert.equal(Math.min(...iterations('small_dense')), 0, 'a network from scratch trains the whole budget');
});
