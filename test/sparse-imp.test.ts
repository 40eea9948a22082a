/**
 * A short IMP run of LeNet-300-100 on MNIST (20 iterations, evaluation every 10, 3 levels:
 * 80%, 64%, 51% of the weights) gives the same summary with LTH_SPARSE=on (every masked
 * Linear sparse, whatever its density) and LTH_SPARSE=off (dense masked kernels), within
 * float tolerance. LTH_SPARSE is read at call time, so both runs share this process.
 *
 * Why short: the two paths sum in different orders, and Adam turns gradients that are pure
 * rounding noise (|g| ~ 1e-10, from cancellation) into steps of lr·g/eps ~ 1e-5, which
 * training then amplifies: after ~30 iterations the runs drift apart by more than any
 * float tolerance (measured: weights within 7e-6 after 20 iterations, 5e-4 after 29), as
 * two float orders of the same dense computation would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';

function runWith(mode: 'on' | 'off') {
  const before = process.env.LTH_SPARSE;
  process.env.LTH_SPARSE = mode;
  try {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `lth-sparse-${mode}-`));
    const h = resolveLottery({ steps: '20it', evalEvery: 10, levels: 3, root });
    const started = performance.now();
    const { summary } = runLottery(h);
    return { summary, seconds: (performance.now() - started) / 1000 };
  } finally {
    if (before === undefined) delete process.env.LTH_SPARSE;
    else process.env.LTH_SPARSE = before;
  }
}

test('IMP summary with LTH_SPARSE=on equals LTH_SPARSE=off within tolerance', () => {
  const on = runWith('on'), off = runWith('off');
  assert.equal(on.summary.complete, true);
  const a = on.summary.replicates[0].levels, b = off.summary.replicates[0].levels;
  assert.equal(a.length, 4);
  for (let k = 0; k < a.length; k++) {
    assert.equal(a[k].density, b[k].density, `level ${k} density`);
    assert.equal(a[k].earlyStopIteration, b[k].earlyStopIteration, `level ${k} early-stop iteration`);
    assert.ok(Math.abs(a[k].earlyStopValLoss - b[k].earlyStopValLoss) <= 1e-4 * Math.max(1, b[k].earlyStopValLoss),
      `level ${k} val loss ${a[k].earlyStopValLoss} vs ${b[k].earlyStopValLoss}`);
    assert.ok(Math.abs(a[k].earlyStopTestAccuracy - b[k].earlyStopTestAccuracy) <= 5e-4,
      `level ${k} test accuracy ${a[k].earlyStopTestAccuracy} vs ${b[k].earlyStopTestAccuracy}`);
    assert.ok(Math.abs(a[k].finalTestAccuracy - b[k].finalTestAccuracy) <= 5e-4,
      `level ${k} final accuracy ${a[k].finalTestAccuracy} vs ${b[k].finalTestAccuracy}`);
  }
  // 20 iterations, 3 evaluations of 15,000 samples, per level
  process.stdout.write(`# sparse on ${on.seconds.toFixed(1)} s, off ${off.seconds.toFixed(1)} s\n`);
});
