/**
 * Every registered branch through one generic check: its stage at a pruned level starts
 * from weights that are zero wherever its mask prunes, with masks of the level mask's
 * layers and sizes, deterministically; and each branch's own promise (the ticket: θ0 ⊙ the
 * level mask; reinit: the level mask on fresh weights; random_prune and shuffle: a random
 * mask with the level mask's per-layer counts; reinit_sign: θ0's signs with one magnitude
 * per layer; finetune: the trained weights it was pruned from; rigl and set: a random mask
 * with those counts on fresh weights, trained from scratch with dynamic sparsity).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { getModel } from '../models/registry.js';
import { widthsForWeights } from '../models/resize.js';
import { layerCounts } from '../pruning/mask.js';
import { magnitudeLayerwise } from '../pruning/strategies/magnitude-layerwise.js';
import { testContext } from '../pruning/testing.js';
import type { BranchContext } from './branch.js';
import { MAIN, controlNames, getBranch } from './branches.js';

test('every registered branch starts from masked weights of the right shapes, deterministically', () => {
  const spec = getModel('lenet_300_100');
  const fresh = (rng: Rng) => {
    const m = spec.build();
    m.initialize(rng);
    return m.state();
  };
  const theta0 = fresh(new Rng(0, 'init'));
  const names = spec.build().prunableNames();
  const ones = new Map(names.map((n) => [n, new Float32Array(theta0.get(n)!.length).fill(1)]));
  const levelMask = magnitudeLayerwise.prune(testContext({ rates: spec.pruningRates(spec.build()), trained: theta0, mask: ones }));
  const trained = fresh(new Rng(9, 'trained'));
  const ctx = (): BranchContext => ({
    level: 2, seed: 0, levelMask, rewind: theta0, trained,
    freshInit: (stream) => fresh(new Rng(0, stream, 2)),
    rng: (stream) => new Rng(0, stream, 2),
    pruneInverted: () => magnitudeLayerwise.prune({ ...testContext({ rates: spec.pruningRates(spec.build()), trained: theta0, mask: ones }), invert: true }),
    smallDense: (weights, stream) => {
      const model = spec.withWidths!(widthsForWeights(spec, weights).widths);
      model.initialize(new Rng(0, stream, 2));
      return { model, init: model.state() };
    },
  });
  assert.deepEqual(controlNames(), ['reinit', 'random_prune', 'reinit_sign', 'shuffle', 'finetune', 'lr_rewind', 'invert', 'small_dense', 'stability', 'rigl', 'set']);
  assert.throws(() => getBranch('nope'), /unknown branch 'nope'. Known: reinit, random_prune, reinit_sign, shuffle, finetune, lr_rewind, invert, small_dense, stability/);
  for (const name of [MAIN, ...controlNames()]) {
    const b = getBranch(name);
    assert.ok(b.label && b.description, `${name}: a label and a description`);
    const { init, mask, model } = b.start(ctx());
    assert.deepEqual(b.start(ctx()).init, init, `${name}: deterministic`);
    assert.deepEqual(b.start(ctx()).mask, mask, `${name}: deterministic`);
    if (name === 'small_dense') {
      // A dense network as big as the ticket: every weight kept, within one hidden neuron's weights of the ticket's count.
      assert.ok(model, 'small_dense: a network of its own');
      assert.deepEqual([...init.keys()], [...model.state().keys()]);
      let ticket = 0, small = 0;
      for (const m of levelMask.values()) ticket += m.reduce((a, v) => a + v, 0);
      for (const [n, m] of mask) {
        assert.ok(m.every((v) => v === 1), `small_dense ${n}: nothing pruned`);
        small += m.length;
      }
      const fc1 = model.parameter('fc1.weight').shape, fc2 = model.parameter('fc2.weight').shape;
      assert.ok(fc1[0] < 300 && fc2[0] < 100, `small_dense: narrower (${fc1[0]}, ${fc2[0]})`);
      assert.ok(Math.abs(small - ticket) <= 784 + 100, `small_dense: ${small} weights for a ticket of ${ticket}`);
      continue;
    }
    assert.equal(model, undefined, `${name}: the run's network`);
    assert.deepEqual([...mask.keys()], names, `${name}: a mask per prunable weight`);
    assert.deepEqual([...init.keys()], [...theta0.keys()], `${name}: every tensor of the model`);
    for (const [n, m] of mask) {
      const w = init.get(n)!;
      assert.equal(m.length, w.length);
      for (let i = 0; i < m.length; i++) if (m[i] === 0) assert.ok(Object.is(w[i], 0), `${name} ${n}[${i}] is pruned but not +0`);
    }
    assert.deepEqual(layerCounts(mask), layerCounts(levelMask), `${name}: the level's per-layer counts`);
    const w = init.get('fc1.weight')!, t0 = theta0.get('fc1.weight')!, m = mask.get('fc1.weight')!;
    let fromTheta0 = 0, kept = 0;
    for (let i = 0; i < m.length; i++) if (m[i]) { kept++; if (w[i] === t0[i]) fromTheta0++; }
    if (name === 'reinit' || name === 'rigl' || name === 'set') {
      assert.equal(fromTheta0, 0, `${name}: fresh weights`);
    } else if (name === 'finetune' || name === 'lr_rewind') {
      const tw = trained.get('fc1.weight')!;
      for (let i = 0; i < m.length; i++) if (m[i]) assert.equal(w[i], tw[i], `finetune fc1[${i}]: the trained weight`);
      assert.deepEqual(init.get('fc1.bias'), trained.get('fc1.bias'), 'finetune: the trained biases');
    } else if (name === 'reinit_sign') {
      // θ0's signs, one magnitude per layer: the RMS of the layer's θ0.
      const rms = Math.sqrt(t0.reduce((a, v) => a + v * v, 0) / t0.length);
      for (let i = 0; i < m.length; i++) if (m[i]) assert.ok(Math.sign(w[i]) === Math.sign(t0[i]) && Math.abs(Math.abs(w[i]) - rms) < 1e-7, `reinit_sign fc1[${i}]`);
    } else {
      assert.equal(fromTheta0, kept, `${name}: survivors reset to θ0`);
    }
    if (name === 'invert') {
      // The level's pruning of the same weights keeping the smallest |w| instead: every kept weight below every pruned one.
      for (const [n, lm] of mask) {
        const tw = theta0.get(n)!;
        let maxKept = 0, minPruned = Infinity;
        for (let i = 0; i < lm.length; i++) {
          if (lm[i]) maxKept = Math.max(maxKept, Math.abs(tw[i]));
          else minPruned = Math.min(minPruned, Math.abs(tw[i]));
        }
        assert.ok(maxKept <= minPruned, `invert ${n}: kept |w| up to ${maxKept}, pruned from ${minPruned}`);
      }
      continue;
    }
    if (name === 'rigl' || name === 'set') assert.deepEqual({ from: b.start(ctx()).from, sparseTrain: b.start(ctx()).sparseTrain }, { from: 'start', sparseTrain: name }, `${name}: from scratch, with dynamic sparsity`);
    if (name === 'random_prune' || name === 'shuffle' || name === 'rigl' || name === 'set') assert.notDeepEqual(m, levelMask.get('fc1.weight'), `${name}: another mask`);
    else assert.deepEqual(mask, levelMask, `${name}: the level's mask`);
  }
});
