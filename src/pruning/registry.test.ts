/**
 * Every registered strategy through one generic check on LeNet's shapes (a small Conv-2's
 * for one that removes channels, a small conv-BN chain for one that needs batch norm): it
 * declares when it runs and its structure, removes exactly round(rate · remaining) weights
 * per layer (pooled for a global strategy; units per layer for a structured one, pooled
 * over its layers for a global structured one, whose masks stay structured), never revives
 * a pruned weight, is deterministic, and returns masks of the context's layers and sizes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { getModel } from '../models/registry.js';
import { keptUnits, unitChain } from '../nn/compact.js';
import { Conv2d, Linear, MaxPool2d } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Sequential } from '../nn/module.js';
import { BatchNorm2d, GlobalAvgPool2d } from '../nn/norm.js';
import { ratesByKind } from '../models/spec.js';
import { countOnes, layerCounts, onesMask } from './mask.js';
import { getStrategy, strategyNames } from './registry.js';
import type { PruningContext, Strategy } from './strategy.js';
import { magnitudeGlobal } from './strategies/magnitude-global.js';
import { testContext } from './testing.js';

/** conv 3->8 + BN, pool, conv 8->12 + BN, pool, conv 12->8 + BN, global average pooling, fc 8->10. */
function convBn(): Model {
  const block = (i: number, o: number) => new Sequential([['conv', new Conv2d(i, o, 3, { padding: 1 })], ['bn', new BatchNorm2d(o, 'relu')]]);
  return new Model('conv_bn', [['layers', new Sequential([['0', block(3, 8)], ['1', new MaxPool2d(2)], ['2', block(8, 12)], ['3', new MaxPool2d(2)], ['4', block(12, 8)]])],
    ['pool', new GlobalAvgPool2d()], ['fc', new Linear(8, 10, 'none')]]);
}

/**
 * LeNet; for strategies that remove conv channels a Conv-2 of 8, 8 channels and fc 32, 32,
 * or a small conv-BN chain where the strategy needs batch norm.
 */
function network(strategy: Strategy) {
  const spec = getModel(strategy.structure === 'channels' ? 'conv2' : 'lenet_300_100');
  let build = () => (strategy.structure === 'channels' ? spec.withWidths!([8, 8, 32, 32]) : spec.build());
  let rates = spec.pruningRates;
  try {
    strategy.checkModel?.(build());
  } catch {
    [build, rates] = [convBn, ratesByKind(0.2, 0.2)];
  }
  const model = build();
  model.initialize(new Rng(0, 'init'));
  const theta0 = model.state();
  const rng = new Rng(4, 'trained');
  const trained = new Map([...theta0].map(([n, w]) => [n, w.map(() => rng.normal())]));
  return { build, model, theta0, trained, rates: rates(model) };
}

test('every registered strategy prunes exactly, only shrinks masks, and is deterministic', () => {
  for (const name of strategyNames()) {
    const strategy = getStrategy(name);
    const { build, model, theta0, trained, rates } = network(strategy);
    assert.equal(strategy.name, name);
    assert.ok(['after_training', 'at_init'].includes(strategy.when), `${name}: when`);
    assert.ok(['unstructured', 'neurons', 'channels'].includes(strategy.structure), `${name}: structure`);
    assert.equal(typeof strategy.global, 'boolean', `${name}: global or not`);
    assert.ok(strategy.description.length > 10, `${name}: a description for --help`);
    let mask = onesMask(theta0, model.prunableNames());
    for (let level = 1; level <= 2; level++) {
      const ctx = (): PruningContext => ({
        ...testContext({ rates, trained: strategy.when === 'after_training' ? trained : null, mask, theta0, level, seed: 5 }),
        layers: model.prunableLayers(),
        model: build,
        sample: (n) => {
          const r = new Rng(level, 'sample');
          return { x: new Float32Array(n * 784).map(() => r.normal()), labels: Int32Array.from({ length: n }, (_, i) => i % 10), shape: [n, 784] };
        },
      });
      const next = strategy.prune(ctx());
      if (level === 1) assert.deepEqual(next, strategy.prune(ctx()), `${name}: deterministic`);
      assert.deepEqual([...next.keys()], [...mask.keys()], `${name}: one mask per prunable weight`);
      const before = layerCounts(mask), after = layerCounts(next);
      let removed = 0, remaining = 0;
      for (const [n, m] of next) {
        assert.equal(m.length, mask.get(n)!.length);
        const prev = mask.get(n)!;
        for (let i = 0; i < m.length; i++) assert.ok(m[i] <= prev[i], `${name} level ${level} ${n}[${i}]: a pruned weight came back`);
        removed += before.get(n)! - after.get(n)!;
        remaining += before.get(n)!;
        if (strategy.structure === 'unstructured' && !strategy.global) {
          assert.equal(before.get(n)! - after.get(n)!, Math.round(rates.get(n)! * before.get(n)!), `${name} level ${level} ${n}`);
        }
      }
      if (strategy.structure !== 'unstructured') {
        // Whole units: round(rate · remaining units) of each layer of the strategy's kind but the output layer.
        const chain = unitChain(model), units = (m: typeof mask) => keptUnits(chain, m)!.map((k) => k.reduce((a, v) => a + v, 0));
        assert.ok(keptUnits(chain, next), `${name} level ${level}: the mask stays structured`);
        const was = units(mask), now = units(next);
        const target = (i: number) => !chain[i].output && chain[i].kind === (strategy.structure === 'channels' ? 'conv2d' : 'linear');
        if (strategy.global) {
          const pooled = (u: number[]) => u.filter((_, i) => target(i)).reduce((a, v) => a + v, 0);
          assert.equal(pooled(was) - pooled(now), Math.round(Math.max(...rates.values()) * pooled(was)), `${name} level ${level}: pooled units`);
        }
        chain.forEach((l, i) => {
          if (!target(i)) assert.equal(was[i] - now[i], 0, `${name} level ${level} ${l.weight}: units`);
          else if (!strategy.global) assert.equal(was[i] - now[i], Math.round(rates.get(l.weight)! * was[i]), `${name} level ${level} ${l.weight}: units`);
        });
      }
      if (strategy.global && strategy.structure === 'unstructured') assert.equal(removed, Math.round(Math.max(...rates.values()) * remaining), `${name} level ${level}: pooled count`);
      mask = next;
    }
  }
});

test('global magnitude pruning at 20 million weights: typed arrays, exact count, ties by position', () => {
  const sizes = [12_000_000, 8_000_000, 1000];
  const rng = new Rng(1, 'big');
  const trained = new Map(sizes.map((n, l) => {
    // Quantised magnitudes, so that many weights tie at the threshold.
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = ((rng.nextU32() % 1000) - 500) / 100;
    return [`fc${l + 1}.weight`, w];
  }));
  const mask = new Map([...trained].map(([n, w]) => [n, new Float32Array(w.length).fill(1)]));
  const rates = new Map([['fc1.weight', 0.2], ['fc2.weight', 0.2], ['fc3.weight', 0.1]]);
  const out = magnitudeGlobal.prune(testContext({ rates, trained, mask, ignore: ['fc3.weight'] }));
  const kept = layerCounts(out);
  assert.equal(20_000_000 - kept.get('fc1.weight')! - kept.get('fc2.weight')!, 4_000_000);
  assert.equal(kept.get('fc3.weight'), 1000, 'the ignored layer is untouched');
  // Everything below the threshold went, nothing above it; at the threshold, the earlier positions went first.
  let threshold = 0;
  for (const n of ['fc1.weight', 'fc2.weight']) {
    const w = trained.get(n)!, m = out.get(n)!;
    for (let i = 0; i < w.length; i++) if (m[i] === 0) threshold = Math.max(threshold, Math.abs(w[i]));
  }
  let seenKeptAtThreshold = false;
  for (const n of ['fc1.weight', 'fc2.weight']) {
    const w = trained.get(n)!, m = out.get(n)!;
    for (let i = 0; i < w.length; i++) {
      const a = Math.abs(w[i]);
      if (a < threshold) assert.equal(m[i], 0);
      else if (a > threshold) assert.equal(m[i], 1);
      else if (m[i] === 1) seenKeptAtThreshold = true;
      else assert.ok(!seenKeptAtThreshold, 'a tie kept before a tie pruned');
    }
  }
  assert.equal(countOnes(out.get('fc1.weight')!) + countOnes(out.get('fc2.weight')!), 16_000_000);
});
