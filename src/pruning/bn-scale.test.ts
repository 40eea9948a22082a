/**
 * bn_scale (Network Slimming): channels by |γ| of the batch norm after each hidden conv,
 * one threshold across layers, against masks computed by hand on a tiny conv-BN chain (the
 * next conv's input channels, fc's columns after global average pooling, the layer that
 * would lose its last channel, the inversion, --ignore); on VGG-11 two rounds that stay
 * structured and compile to the compact program; and the user errors a lottery gives
 * before training (a ResNet is not a chain, Conv-2 has no batch norm).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { resolveLottery } from '../lottery/hparams.js';
import { getModel } from '../models/registry.js';
import { keptUnits, unitChain } from '../nn/compact.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Sequential } from '../nn/module.js';
import { BatchNorm2d, GlobalAvgPool2d } from '../nn/norm.js';
import { compileProgram } from '../program/compile.js';
import { onesMask, type Mask } from './mask.js';
import { bnScale } from './strategies/bn-scale.js';
import type { PruningContext } from './strategy.js';
import { testContext } from './testing.js';

/** conv1 1->4 (1x1) + bn1, conv2 4->3 (1x1) + bn2 (nested as open_lth's VGG layers), GAP, fc 3->2. */
function tiny(): Model {
  return new Model('tiny_bn', [
    ['layers', new Sequential([
      ['0', new Sequential([['conv', new Conv2d(1, 4, 1)], ['bn', new BatchNorm2d(4, 'relu')]])],
      ['1', new Sequential([['conv', new Conv2d(4, 3, 1)], ['bn', new BatchNorm2d(3, 'relu')]])],
    ])],
    ['pool', new GlobalAvgPool2d()],
    ['fc', new Linear(3, 2, 'none')],
  ]);
}

function context(gamma1: number[], gamma2: number[], opts: { invert?: boolean; ignore?: string[]; mask?: Mask } = {}): PruningContext {
  const trained = tiny().state();
  trained.set('layers.0.bn.weight', Float32Array.from(gamma1));
  trained.set('layers.1.bn.weight', Float32Array.from(gamma2));
  const mask = opts.mask ?? onesMask(trained, tiny().prunableNames());
  const rates = new Map([['layers.0.conv.weight', 0.5], ['layers.1.conv.weight', 0.5], ['fc.weight', 0.5]]);
  return { ...testContext({ rates, trained, mask, ignore: opts.ignore }), layers: tiny().prunableLayers(), model: tiny, invert: opts.invert };
}

const rows = (m: Mask) => Object.fromEntries([...m].map(([n, v]) => [n, [...v]]));

test('bn_scale by hand: the smallest |γ| across layers, with the next conv\'s input channels and fc\'s columns', () => {
  // 7 channels at 0.5: round(3.5) = 4 go, the smallest |γ|: 0.01 (layers.1 #1), 0.05 (layers.0 #2), -0.1 (layers.0 #0), 0.3 (layers.1 #0).
  const once = bnScale.prune(context([-0.1, -2, 0.05, 1], [0.3, 0.01, 3]));
  assert.deepEqual(rows(once), {
    'layers.0.conv.weight': [0, 1, 0, 1],
    'layers.1.conv.weight': [0, 0, 0, 0, /**/ 0, 0, 0, 0, /**/ 0, 1, 0, 1],
    'fc.weight': [0, 0, 1, /**/ 0, 0, 1],
  });
  assert.ok(keptUnits(unitChain(tiny()), once), 'structured');
  // Inverted: the largest |γ| go instead.
  assert.deepEqual(rows(bnScale.prune(context([-0.1, -2, 0.05, 1], [0.3, 0.01, 3], { invert: true })))['layers.0.conv.weight'], [1, 0, 1, 0]);
});

test('bn_scale: a layer keeps its best channel when the threshold would take them all; --ignore leaves a layer alone', () => {
  // The 4 smallest are all 3 of layers.1 and layers.0 #0: layers.1 keeps #2 (|γ| 0.03).
  const m = bnScale.prune(context([1, 2, 3, 4], [0.01, -0.02, 0.03]));
  assert.deepEqual(rows(m)['layers.0.conv.weight'], [0, 1, 1, 1]);
  assert.deepEqual(rows(m)['fc.weight'], [0, 0, 1, 0, 0, 1]);
  // layers.1 ignored: 4 channels pooled, round(2) = 2 go from layers.0.
  const ignored = bnScale.prune(context([1, 2, 3, 4], [0.01, -0.02, 0.03], { ignore: ['layers.1.conv.weight'] }));
  assert.deepEqual(rows(ignored)['layers.0.conv.weight'], [0, 0, 1, 1]);
  assert.deepEqual(rows(ignored)['fc.weight'], [1, 1, 1, 1, 1, 1]);
});

test('bn_scale on VGG-11: two rounds of 20% of the remaining channels, structured, trained on the compact program', () => {
  const spec = getModel('cifar_vgg_11');
  const model = spec.build();
  model.initialize(new Rng(7, 'init'));
  const rng = new Rng(7, 'gamma');
  const trained = model.state();
  for (const [n, v] of trained) if (n.endsWith('bn.weight')) v.forEach((_, i, a) => { a[i] = rng.normal(); });
  const chain = unitChain(model);
  let mask = onesMask(trained, model.prunableNames());
  const kept: number[] = [];
  for (let r = 1; r <= 2; r++) {
    mask = bnScale.prune({ ...testContext({ rates: spec.pruningRates(model), trained, mask, ignore: ['fc.weight'] }), layers: model.prunableLayers(), model: () => spec.build() });
    const k = keptUnits(chain, mask);
    assert.ok(k, `round ${r}: structured`);
    kept.push(k.slice(0, 8).reduce((a, u) => a + u.reduce((b, v) => b + v, 0), 0));
  }
  // 2,752 conv channels: round(0.2·2752) = 550 go, then round(0.2·2202) = 440.
  assert.deepEqual(kept, [2202, 1762]);
  const program = compileProgram(model, { masks: mask, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }, context: resolveContext({}, {}) });
  assert.equal(program.kind, 'compact');
  assert.deepEqual([...program.state().keys()].sort(), [...model.state().keys()].sort(), 'it speaks the full model\'s names');
});

test('bn_scale: a lottery refuses a model it cannot slim before training', () => {
  assert.equal(resolveLottery({ model: 'cifar_vgg_11', strategy: 'bn_scale' }).strategy, 'bn_scale');
  assert.throws(() => resolveLottery({ model: 'cifar_resnet_20', strategy: 'bn_scale' }), { name: 'LthError', message: /structured pruning needs a chain of Linear\/Conv2d layers: blocks.0 \(basic_block\)/ });
  assert.throws(() => resolveLottery({ model: 'conv2', strategy: 'bn_scale' }), { name: 'LthError', message: 'bn_scale: conv2 has no hidden convolution followed by batch norm to remove channels from' });
});
