import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { getModel } from '../models/registry.js';
import { countOnes, density, layerCounts, onesMask, randomMaskLike } from './mask.js';
import { ratesForTarget } from './rates.js';
import { getStrategy } from './registry.js';
import { magnitudeGlobal } from './strategies/magnitude-global.js';
import { magnitudeLayerwise } from './strategies/magnitude-layerwise.js';
import { testContext } from './testing.js';

function lenet() {
  const spec = getModel('lenet_300_100');
  const model = spec.build();
  model.initialize(new Rng(0, 'init'));
  return { model, rates: spec.pruningRates(model), weights: model.state(), names: model.prunableNames() };
}

const pct = (x: number) => (100 * x).toFixed(1);

test('LeNet density ladder equals the paper labels at levels 3, 7, 9, 12, 15, 18', () => {
  const { rates, weights, names } = lenet();
  assert.deepEqual([...rates], [['fc1.weight', 0.2], ['fc2.weight', 0.2], ['fc3.weight', 0.1]]);
  let mask = onesMask(weights, names);
  const rng = new Rng(1, 'test');
  const labels: Record<number, string> = {};
  for (let k = 1; k <= 18; k++) {
    // Fresh "trained" weights each round, as IMP would have.
    const trained = new Map([...weights].map(([n, w]) => [n, w.map(() => rng.normal())]));
    const next = magnitudeLayerwise.prune(testContext({ rates, trained, mask, level: k }));
    for (const [n, m] of next) {
      const before = mask.get(n)!;
      for (let i = 0; i < m.length; i++) assert.ok(m[i] <= before[i], 'masks only shrink');
      // Each layer loses round(rate · remaining), exactly.
      assert.equal(countOnes(before) - countOnes(m), Math.round(rates.get(n)! * countOnes(before)));
    }
    mask = next;
    labels[k] = pct(density(mask));
    const formula = (265200 * 0.8 ** k + 1000 * 0.9 ** k) / 266200;
    assert.ok(Math.abs(density(mask) - formula) < 2e-5, `level ${k}: ${density(mask)} vs ${formula}`);
  }
  assert.deepEqual([labels[3], labels[7], labels[9], labels[12], labels[15], labels[18]], ['51.3', '21.1', '13.5', '7.0', '3.6', '1.9']);
});

test('layerwise magnitude pruning removes the smallest |w| of what remains; ties break by position', () => {
  const trained = new Map([['w', Float32Array.from([0.5, -0.1, 0.3, -0.2, 0.1, 0.9, 0.1, -0.7, 0.05, 0.4])]]);
  const rates = new Map([['w', 0.3]]);
  const m1 = magnitudeLayerwise.prune(testContext({ rates, trained, mask: new Map([['w', new Float32Array(10).fill(1)]]) }));
  // 3 of 10: 0.05, then the tie |−0.1| = |0.1| = |0.1| broken by position -> indices 8, 1, 4.
  assert.deepEqual([...m1.get('w')!], [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]);
  const m2 = magnitudeLayerwise.prune(testContext({ rates, trained, mask: m1 }));
  // 30% of the 7 remaining = round(2.1) = 2: next smallest remaining are 0.1 (idx 6) and -0.2 (idx 3).
  assert.deepEqual([...m2.get('w')!], [1, 0, 1, 0, 0, 1, 0, 1, 0, 1]);
  // A pruned entry never comes back even if its trained value is now large.
  trained.get('w')![8] = 100;
  assert.equal(magnitudeLayerwise.prune(testContext({ rates, trained, mask: m2 })).get('w')![8], 0);
});

test('global magnitude pruning pools layers and leaves ignored layers alone', () => {
  const trained = new Map([
    ['a', Float32Array.from([1, 2, 3, 4])],
    ['b', Float32Array.from([0.5, 5, 6, 0.1])],
    ['out', Float32Array.from([0.01, 0.02])],
  ]);
  const ones = new Map([...trained].map(([n, w]) => [n, new Float32Array(w.length).fill(1)]));
  const m = magnitudeGlobal.prune(testContext({ rates: new Map([['a', 0.25], ['b', 0.25], ['out', 0.125]]), trained, mask: ones, ignore: ['out'] }));
  // 25% of the 8 pooled = 2 smallest: b[3]=0.1, b[0]=0.5.
  assert.deepEqual([...m.get('a')!], [1, 1, 1, 1]);
  assert.deepEqual([...m.get('b')!], [0, 1, 1, 0]);
  assert.deepEqual([...m.get('out')!], [1, 1]);
});

test('random pruning and randomMaskLike keep exact per-layer counts, seeded', () => {
  const { rates, weights, names } = lenet();
  const ones = onesMask(weights, names);
  const ctx = () => testContext({ rates, trained: weights, mask: ones, seed: 3, level: 1 });
  const r1 = getStrategy('random_layerwise').prune(ctx());
  const r2 = getStrategy('random_layerwise').prune(ctx());
  assert.deepEqual(layerCounts(r1), new Map([['fc1.weight', 188160], ['fc2.weight', 24000], ['fc3.weight', 900]]));
  assert.deepEqual(r1, r2);
  const magnitude = magnitudeLayerwise.prune(ctx());
  const like = randomMaskLike(magnitude, new Rng(3, 'random_prune', 1));
  assert.deepEqual(layerCounts(like), layerCounts(magnitude));
  assert.notDeepEqual(like.get('fc1.weight'), magnitude.get('fc1.weight'));
  assert.throws(() => getStrategy('magnitude'), /Unknown pruning strategy 'magnitude'. Known: magnitude_layerwise, magnitude_global, random_layerwise/);
});

test('ratesForTarget: n rounds land on the target density, output at half the rate', () => {
  const { rates, weights, names } = lenet();
  const sizes = new Map([...weights].map(([n, w]) => [n, w.length]));
  for (const [target, rounds] of [[0.2, 5], [0.05, 10], [0.3, 1]] as const) {
    const r = ratesForTarget(rates, sizes, target, rounds);
    assert.ok(Math.abs(r.get('fc3.weight')! * 2 - r.get('fc1.weight')!) < 1e-12, 'ratios kept');
    let mask = onesMask(weights, names);
    for (let k = 1; k <= rounds; k++) mask = magnitudeLayerwise.prune(testContext({ rates: r, trained: weights, mask, level: k }));
    assert.ok(Math.abs(density(mask) - target) < 1e-4, `target ${target} in ${rounds}: got ${density(mask)}`);
  }
  assert.throws(() => ratesForTarget(rates, sizes, 1.5, 3), /target density must be in \(0, 1\)/);
});

test('inverted pruning (the invert sanity check) removes the highest scores instead, layerwise and pooled', () => {
  const trained = new Map([['w', Float32Array.from([0.5, -0.1, 0.3, -0.2, 0.1, 0.9, 0.1, -0.7, 0.05, 0.4])]]);
  const ones = () => new Map([['w', new Float32Array(10).fill(1)]]);
  const m = magnitudeLayerwise.prune({ ...testContext({ rates: new Map([['w', 0.3]]), trained, mask: ones() }), invert: true });
  // 3 of 10 by largest |w|: 0.9 (5), -0.7 (7), 0.5 (0).
  assert.deepEqual([...m.get('w')!], [0, 1, 1, 1, 1, 0, 1, 0, 1, 1]);
  const pooled = new Map([['a', Float32Array.from([1, -2, 3, 4])], ['b', Float32Array.from([0.5, 5, -6, 0.1])]]);
  const g = magnitudeGlobal.prune({
    ...testContext({ rates: new Map([['a', 0.25], ['b', 0.25]]), trained: pooled, mask: new Map([['a', new Float32Array(4).fill(1)], ['b', new Float32Array(4).fill(1)]]) }),
    invert: true,
  });
  // 2 of the 8 pooled by largest |w|: |-6| (b[2]) and 5 (b[1]).
  assert.deepEqual([...g.get('a')!], [1, 1, 1, 1]);
  assert.deepEqual([...g.get('b')!], [1, 0, 0, 1]);
});
