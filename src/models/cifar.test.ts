/**
 * The CIFAR ResNets and VGGs: PyTorch/open_lth parameter and buffer names and counts, which
 * weights are prunable (convolutions and fc, never batch norm), the literature's training
 * and pruning defaults as a lottery resolves them, forward shapes in both modes, the
 * description round trip the evaluation worker relies on, FLOP accounting through
 * residual blocks, and global magnitude pruning that leaves fc and batch norm alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { resolveLottery } from '../lottery/hparams.js';
import { pruningRates } from '../lottery/rates.js';
import { buildModel } from '../nn/build.js';
import { weightMacs } from '../nn/flops.js';
import { onesMask } from '../pruning/mask.js';
import { magnitudeGlobal } from '../pruning/strategies/magnitude-global.js';
import { testContext } from '../pruning/testing.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { getModel } from './registry.js';

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const parameterCount = (name: string) => sum(getModel(name).build().namedParameters().map(([, t]) => t.size));

test("parameter counts are PyTorch's (open_lth's modules): ResNet-20 272,474, ResNet-56 855,770, VGG-11/16/19 9,231,114 / 14,728,266 / 20,040,522", () => {
  assert.deepEqual(['cifar_resnet_20', 'cifar_resnet_56', 'cifar_vgg_11', 'cifar_vgg_16', 'cifar_vgg_19'].map(parameterCount),
    [272474, 855770, 9231114, 14728266, 20040522]);
});

test('ResNet-20: PyTorch names, projection shortcuts where the shape changes, bias-free convs, BN buffers', () => {
  const model = getModel('cifar_resnet_20').build();
  const shapes = new Map(model.namedTensors().map(([n, t]) => [n, t.shape]));
  assert.deepEqual(shapes.get('conv.weight'), [16, 3, 3, 3]);
  assert.equal(shapes.has('conv.bias'), false);
  for (const b of ['bn', 'blocks.0.bn1', 'blocks.8.bn2', 'blocks.3.shortcut.1']) {
    const c = shapes.get(`${b}.weight`)![0];
    for (const t of ['bias', 'running_mean', 'running_var']) assert.deepEqual(shapes.get(`${b}.${t}`), [c], `${b}.${t}`);
    assert.deepEqual(shapes.get(`${b}.num_batches_tracked`), [], `${b}.num_batches_tracked is a scalar`);
  }
  assert.deepEqual(shapes.get('blocks.3.conv1.weight'), [32, 16, 3, 3]);
  assert.deepEqual(shapes.get('blocks.3.shortcut.0.weight'), [32, 16, 1, 1]);
  assert.deepEqual(shapes.get('blocks.6.shortcut.0.weight'), [64, 32, 1, 1]);
  const shortcuts = [...shapes.keys()].filter((n) => n.endsWith('shortcut.0.weight'));
  assert.deepEqual(shortcuts, ['blocks.3.shortcut.0.weight', 'blocks.6.shortcut.0.weight']);
  assert.deepEqual(shapes.get('fc.weight'), [10, 64]);
  // Prunable: every conv and fc weight (19 convs + 2 shortcuts + fc), never batch norm; fc last.
  const prunable = model.prunableLayers();
  assert.equal(prunable.length, 22);
  assert.ok(prunable.every((l) => l.name.endsWith('.weight') && !/bn|shortcut\.1/.test(l.name)));
  assert.deepEqual(prunable[prunable.length - 1], { name: 'fc.weight', kind: 'linear', shape: [10, 64], output: true });
  assert.equal(getModel('cifar_resnet_56').build().prunableLayers().length, 58);
});

test('VGG-11: layers.i.conv / layers.i.bn at the plan\'s indices (pooling counts), fc 512->10', () => {
  const model = getModel('cifar_vgg_11').build();
  const convs = model.namedParameters().map(([n]) => n).filter((n) => n.endsWith('conv.weight'));
  assert.deepEqual(convs, [0, 2, 4, 5, 7, 8, 10, 11].map((i) => `layers.${i}.conv.weight`));
  const names = new Set(model.namedTensors().map(([n]) => n));
  for (const t of ['conv.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked']) assert.ok(names.has(`layers.7.${t}`), t);
  assert.deepEqual(model.parameter('fc.weight').shape, [10, 512]);
  assert.equal(getModel('cifar_vgg_16').build().prunableLayers().length, 14);
  assert.equal(getModel('cifar_vgg_19').build().prunableLayers().length, 17);
});

test("training defaults are the literature's; a lottery prunes globally 20% a round, ignoring fc", () => {
  for (const [name, wd] of [['cifar_resnet_20', 1e-4], ['cifar_resnet_56', 1e-4], ['cifar_vgg_11', 5e-4], ['cifar_vgg_16', 5e-4], ['cifar_vgg_19', 5e-4]] as const) {
    const spec = getModel(name);
    assert.deepEqual(spec.training, {
      dataset: 'cifar10', steps: '160ep', batchSize: 128, optimizer: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: wd, lrSchedule: 'step:80ep,120ep', lrGamma: 0.1,
    }, name);
    const model = spec.build();
    assert.ok([...spec.pruningRates(model)].every(([n, r]) => r === (n === 'fc.weight' ? 0.1 : 0.2)), name);
    const h = resolveLottery({ model: name });
    assert.equal(h.strategy, 'magnitude_global');
    assert.deepEqual(h.ignore, ['fc.weight']);
    assert.deepEqual([h.training.momentum, h.training.weightDecay, h.training.lrSchedule, h.training.lrGamma, h.training.warmupSteps], [0.9, wd, 'step:80ep,120ep', 0.1, '0it']);
  }
  // --rate is every layer's rate here (output at half), not only the fully connected ones'.
  const rated = resolveLottery({ model: 'cifar_vgg_11', rate: 0.3 });
  const vgg = getModel('cifar_vgg_11').build();
  assert.ok([...pruningRates(rated, vgg)].every(([n, r]) => r === (n === 'fc.weight' ? 0.15 : 0.3)));
  // A layerwise strategy ignores nothing; Adam starts without SGD's momentum and weight decay.
  assert.deepEqual(resolveLottery({ model: 'cifar_resnet_20', strategy: 'magnitude_layerwise' }).ignore, []);
  assert.deepEqual(resolveLottery({ model: 'cifar_resnet_20', ignore: [] }).ignore, [], "--ignore '' prunes fc too");
  const adam = resolveLottery({ model: 'cifar_resnet_20', optimizer: 'adam' }).training;
  assert.deepEqual([adam.momentum, adam.weightDecay], [0, 0]);
  assert.equal(resolveLottery({ model: 'cifar_resnet_20', warmupSteps: '2ep' }).training.warmupSteps, '2ep');
  // The older models keep their defaults.
  const lenet = resolveLottery({ model: 'lenet_300_100' });
  assert.deepEqual([lenet.strategy, lenet.ignore, lenet.training.momentum, lenet.training.lrSchedule], ['magnitude_layerwise', [], 0, 'constant']);
});

test('ResNet-20 and VGG-11 forward [n, 3, 32, 32] to [n, 10] in both modes; a rebuilt description computes the same', () => {
  for (const name of ['cifar_resnet_20', 'cifar_vgg_11']) {
    const model = getModel(name).build();
    model.initialize(new Rng(0, 'init'));
    const rng = new Rng(1, 'test');
    const x = Tensor.zeros([2, 3, 32, 32]);
    for (let i = 0; i < x.size; i++) x.data[i] = rng.normal();
    const train = noGrad(() => model.forward(x));
    assert.deepEqual(train.shape, [2, 10]);
    assert.ok(train.data.every(Number.isFinite));
    // The training pass moved the running statistics and counted itself.
    assert.notDeepEqual(model.state().get(name.includes('resnet') ? 'bn.running_mean' : 'layers.0.bn.running_mean'), new Float32Array(name.includes('resnet') ? 16 : 64));
    model.eval();
    const evalOut = Float32Array.from(noGrad(() => model.forward(x)).data);
    const copy = buildModel(JSON.parse(JSON.stringify(model.describe())));
    assert.deepEqual([...copy.shapes()], [...model.shapes()]);
    copy.loadState(model.state());
    copy.eval();
    assert.deepEqual(noGrad(() => copy.forward(x)).data, evalOut);
  }
});

test('FLOP accounting reaches the convolutions inside residual blocks, in forward order', () => {
  const model = getModel('cifar_resnet_20').build();
  const macs = weightMacs(model, [3, 32, 32]);
  assert.deepEqual(macs.map((m) => m.name).sort(), model.prunableNames().sort());
  assert.equal(macs[0].name, 'conv.weight');
  assert.ok(macs[0].first && macs.slice(1).every((m) => !m.first));
  assert.equal(macs[macs.length - 1].name, 'fc.weight');
  // Stem 16·27·1024; stage 1: 6 convs of 16·144·1024; stage 2: 32·144·256 + 5 of 32·288·256 + shortcut 32·16·256; stage 3 likewise at 64; fc 640.
  const want = 16 * 27 * 1024 + 6 * 16 * 144 * 1024 + (32 * 144 + 5 * 32 * 288 + 32 * 16) * 256 + (64 * 288 + 5 * 64 * 576 + 64 * 32) * 64 + 640;
  assert.equal(sum(macs.map((m) => m.macs)), want);
});

test('global magnitude pruning removes 20% of the pooled conv weights, leaving fc and batch norm alone', () => {
  const model = getModel('cifar_resnet_20').build();
  model.initialize(new Rng(3, 'init'));
  const spec = getModel('cifar_resnet_20');
  const state = model.state();
  const mask = onesMask(state, model.prunableNames());
  assert.ok(![...mask.keys()].some((n) => n.includes('bn') || n.includes('shortcut.1')), 'no mask for batch norm');
  const next = magnitudeGlobal.prune({ ...testContext({ rates: spec.pruningRates(model), trained: state, mask, ignore: ['fc.weight'] }), layers: model.prunableLayers() });
  let kept = 0, total = 0;
  for (const [n, m] of next) {
    if (n === 'fc.weight') {
      assert.ok(m.every((v) => v === 1), 'fc is ignored');
      continue;
    }
    kept += sum(Array.from(m));
    total += m.length;
  }
  assert.equal(total - kept, Math.round(0.2 * total));
});
