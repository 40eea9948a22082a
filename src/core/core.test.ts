import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from './rng.js';
import { parseStep, stepToIterations, formatStep } from './steps.js';
import { canonical, hashOf } from './hparams.js';

test('Rng: same seed and stream give the same numbers; streams and seeds differ', () => {
  const a = new Rng(0, 'init'), b = new Rng(0, 'init'), c = new Rng(0, 'data'), d = new Rng(1, 'init');
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(Array.from({ length: 5 }, () => b.nextU32()), xs);
  assert.notDeepEqual(Array.from({ length: 5 }, () => c.nextU32()), xs);
  assert.notDeepEqual(Array.from({ length: 5 }, () => d.nextU32()), xs);
  assert.notDeepEqual(new Rng(0, 'data', 1).permutation(10), new Rng(0, 'data', 2).permutation(10));
});

test('Rng: normal() has mean 0 and variance 1; permutation is a permutation', () => {
  const r = new Rng(7, 'test');
  let s = 0, s2 = 0;
  const n = 200000;
  for (let i = 0; i < n; i++) { const x = r.normal(); s += x; s2 += x * x; }
  assert.ok(Math.abs(s / n) < 0.01);
  assert.ok(Math.abs(s2 / n - 1) < 0.01);
  const p = r.permutation(1000);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
});

test('Rng rejects a bad seed', () => {
  assert.throws(() => new Rng(-1, 'x'), /seed must be an integer/);
  assert.throws(() => new Rng(1.5, 'x'), /seed must be an integer/);
});

test('steps: parse, convert and print', () => {
  assert.deepEqual(parseStep('50000it'), { epochs: 0, iterations: 50000 });
  assert.deepEqual(parseStep('40ep'), { epochs: 40, iterations: 0 });
  assert.deepEqual(parseStep('2ep100it'), { epochs: 2, iterations: 100 });
  assert.equal(stepToIterations(parseStep('2ep100it'), 916), 1932);
  assert.equal(formatStep(parseStep('2ep100it')), '2ep100it');
  for (const bad of ['', '100', 'it', '5000iters', '1.5ep', '-3it', 'ep']) {
    assert.throws(() => parseStep(bad, '--steps'), /--steps: cannot parse/);
  }
});

test('hparams: canonical form drops defaults, hash is stable and order-independent', () => {
  const defaults = { lr: 0.1, seed: 0 };
  assert.deepEqual(canonical({ seed: 0, lr: 0.2, extra: undefined }, defaults), { lr: 0.2 });
  assert.equal(hashOf({ a: 1, b: [1, 2] }), hashOf({ b: [1, 2], a: 1 }));
  assert.notEqual(hashOf({ a: 1 }), hashOf({ a: 2 }));
  assert.equal(hashOf({ lr: 0.2 }), 'd719c908f8bd139b'); // pinned: sha256 of '{"lr":0.2}'
});
