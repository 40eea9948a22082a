/**
 * The model registry's conv nets: architecture and weight counts pinned (Conv-6's
 * 2,261,184 of which 1,144,512 conv, as the paper's table gives them correctly), the
 * paper's training defaults and per-kind pruning rates, and the Conv-2/Conv-4 density
 * ladders of layerwise magnitude pruning printed to one decimal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { Conv2d } from '../nn/layers.js';
import { countOnes, density, onesMask } from '../pruning/mask.js';
import { magnitudeLayerwise } from '../pruning/strategies/magnitude-layerwise.js';
import { testContext } from '../pruning/testing.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { getModel, modelNames } from './registry.js';

function counts(name: string): { total: number; conv: number; params: Map<string, readonly number[]> } {
  const model = getModel(name).build();
  let total = 0, conv = 0;
  for (const l of model.prunableLayers()) {
    const size = model.parameter(l.name).size;
    total += size;
    if (l.kind === 'conv2d') conv += size;
  }
  return { total, conv, params: new Map(model.namedParameters().map(([n, t]) => [n, t.shape])) };
}

test('registry lists the conv nets and their dropout variants, the CIFAR ResNets and VGGs, the sequence models; lenet_300_100 unchanged', () => {
  const names = ['lenet_300_100', 'conv2', 'conv2_dropout', 'conv4', 'conv4_dropout', 'conv6', 'conv6_dropout',
    'cifar_resnet_20', 'cifar_resnet_56', 'cifar_vgg_11', 'cifar_vgg_16', 'cifar_vgg_19',
    'text_cnn', 'text_transformer', 'char_lstm', 'char_transformer', 'sensor_cnn'];
  assert.deepEqual(modelNames(), names);
  assert.throws(() => getModel('conv8'), new RegExp(`Unknown model 'conv8'. Known: ${names.join(', ')}`));
  const lenet = getModel('lenet_300_100');
  assert.deepEqual(lenet.training, { dataset: 'mnist', steps: '50000it', batchSize: 60, optimizer: 'adam', lr: 1.2e-3 });
  assert.deepEqual([...lenet.pruningRates(lenet.build())], [['fc1.weight', 0.2], ['fc2.weight', 0.2], ['fc3.weight', 0.1]]);
});

test('prunable weight counts: Conv-2 4,300,992 (38,592 conv), Conv-4 2,425,024 (259,776), Conv-6 2,261,184 (1,144,512)', () => {
  // Conv-2: 3·64·9 + 64·64·9 conv; fc 64·16·16·256 + 256·256 + 256·10.
  assert.deepEqual([counts('conv2').total, counts('conv2').conv], [4300992, 38592]);
  // Conv-4: + 64·128·9 + 128·128·9; fc1 128·8·8·256.
  assert.deepEqual([counts('conv4').total, counts('conv4').conv], [2425024, 259776]);
  // Conv-6: + 128·256·9 + 256·256·9; fc1 256·4·4·256. The paper's text says 1.7M; its table's layers give this.
  assert.deepEqual([counts('conv6').total, counts('conv6').conv], [2261184, 1144512]);
  for (const n of [2, 4, 6]) {
    assert.deepEqual(counts(`conv${n}_dropout`).params, counts(`conv${n}`).params, 'dropout adds no parameters and renames none');
  }
  assert.deepEqual([...counts('conv6').params], [
    ['conv1.weight', [64, 3, 3, 3]], ['conv1.bias', [64]], ['conv2.weight', [64, 64, 3, 3]], ['conv2.bias', [64]],
    ['conv3.weight', [128, 64, 3, 3]], ['conv3.bias', [128]], ['conv4.weight', [128, 128, 3, 3]], ['conv4.bias', [128]],
    ['conv5.weight', [256, 128, 3, 3]], ['conv5.bias', [256]], ['conv6.weight', [256, 256, 3, 3]], ['conv6.bias', [256]],
    ['fc1.weight', [256, 4096]], ['fc1.bias', [256]], ['fc2.weight', [256, 256]], ['fc2.bias', [256]],
    ['fc3.weight', [10, 256]], ['fc3.bias', [10]],
  ]);
});

test('layer order: 3x3 same convs with ReLU, pool after each pair, dropout after each hidden fc layer', () => {
  const layerNames = (name: string) => getModel(name).build().namedChildren().map(([n]) => n);
  assert.deepEqual(layerNames('conv2'), ['conv1', 'conv2', 'pool1', 'flatten', 'fc1', 'fc2', 'fc3']);
  assert.deepEqual(layerNames('conv4'), ['conv1', 'conv2', 'pool1', 'conv3', 'conv4', 'pool2', 'flatten', 'fc1', 'fc2', 'fc3']);
  assert.deepEqual(layerNames('conv6_dropout'),
    ['conv1', 'conv2', 'pool1', 'conv3', 'conv4', 'pool2', 'conv5', 'conv6', 'pool3', 'flatten', 'fc1', 'dropout1', 'fc2', 'dropout2', 'fc3']);
  const model = getModel('conv4').build();
  assert.equal(model.outputWeightName(), 'fc3.weight');
  assert.deepEqual(model.prunableNames(), ['conv1.weight', 'conv2.weight', 'conv3.weight', 'conv4.weight', 'fc1.weight', 'fc2.weight', 'fc3.weight']);
  for (const [, l] of model.namedChildren()) {
    if (l instanceof Conv2d) {
      assert.deepEqual(l.kernel, [3, 3]);
      assert.deepEqual(l.geometry, { strideH: 1, strideW: 1, padH: 1, padW: 1 });
      assert.equal(l.activation, 'relu');
    }
  }
});

test("training defaults and pruning rates are the paper's", () => {
  const want = {
    conv2: { steps: '20000it', lr: 2e-4, conv: 0.1 },
    conv4: { steps: '25000it', lr: 3e-4, conv: 0.1 },
    conv6: { steps: '30000it', lr: 3e-4, conv: 0.15 },
    conv2_dropout: { steps: '60000it', lr: 2e-4, conv: 0.1 },
    conv4_dropout: { steps: '75000it', lr: 3e-4, conv: 0.1 },
    conv6_dropout: { steps: '90000it', lr: 3e-4, conv: 0.15 },
  } as const;
  for (const [name, w] of Object.entries(want)) {
    const spec = getModel(name);
    assert.deepEqual(spec.training, { dataset: 'cifar10', steps: w.steps, batchSize: 60, optimizer: 'adam', lr: w.lr }, name);
    const model = spec.build();
    for (const [param, rate] of spec.pruningRates(model)) {
      const expected = param === 'fc3.weight' ? 0.1 : param.startsWith('conv') ? w.conv : 0.2;
      assert.equal(rate, expected, `${name} ${param}`);
    }
  }
});

test('Conv-2 and Conv-6 (dropout) forward a CIFAR-shaped batch to [n, 10] logits; dropout only while training', () => {
  const rng = new Rng(0, 'test');
  const x = Tensor.zeros([2, 3, 32, 32]);
  for (let i = 0; i < x.size; i++) x.data[i] = rng.normal();
  for (const name of ['conv2', 'conv6_dropout']) {
    const model = getModel(name).build();
    model.initialize(new Rng(0, 'init'));
    model.eval();
    const y = noGrad(() => model.forward(x));
    assert.deepEqual(y.shape, [2, 10]);
    assert.ok(y.data.every(Number.isFinite));
    const again = noGrad(() => model.forward(x));
    assert.deepEqual(again.data, y.data, 'evaluation is deterministic');
    if (name.endsWith('dropout')) assert.notDeepEqual(noGrad(() => model.train().forward(x)).data, y.data, 'dropout acts while training');
  }
  // Dropout leaves θ0 alone: the same seed gives the same initial weights with or without it.
  const a = getModel('conv2').build(), b = getModel('conv2_dropout').build();
  a.initialize(new Rng(3, 'init'));
  b.initialize(new Rng(3, 'init'));
  assert.deepEqual(a.state(), b.state());
  // A conv net fed MNIST-style flat vectors fails with a clear error.
  assert.throws(() => getModel('conv2').build().forward(Tensor.zeros([2, 784])), /conv2d: input must be rank 4/);
});

const pct = (x: number) => (100 * x).toFixed(1);

/**
 * Runs `levels` rounds of layerwise magnitude pruning on the model's own weight shapes.
 * The "trained" weights have magnitudes growing with position (random signs): the counts
 * do not depend on the values, this makes each round remove exactly the lowest remaining
 * positions (checked), and it keeps the strategy's sort linear on these 4.3M weights.
 */
function ladder(name: string, levels: number): Record<number, string> {
  const spec = getModel(name);
  const model = spec.build();
  const rates = spec.pruningRates(model);
  const names = model.prunableNames();
  const rng = new Rng(0, 'trained');
  const weights = new Map(names.map((n) => {
    const w = new Float32Array(model.parameter(n).size);
    for (let i = 0; i < w.length; i++) w[i] = (rng.nextU32() & 1 ? 1 : -1) * (1 + i) / w.length;
    return [n, w];
  }));
  const sizes = new Map(names.map((n) => [n, model.parameter(n).size]));
  let mask = onesMask(weights, names);
  const labels: Record<number, string> = {};
  for (let k = 1; k <= levels; k++) {
    const next = magnitudeLayerwise.prune(testContext({ rates, trained: weights, mask, level: k }));
    for (const [n, m] of next) {
      const removed = countOnes(mask.get(n)!) - countOnes(m);
      assert.equal(removed, Math.round(rates.get(n)! * countOnes(mask.get(n)!)), `${name} level ${k} ${n}`);
      // The smallest magnitudes go: the pruned entries are exactly a prefix.
      const pruned = m.length - countOnes(m);
      assert.ok(m[pruned - 1] === 0 && (pruned === m.length || m[pruned] === 1), `${name} level ${k} ${n}: not a prefix`);
    }
    mask = next;
    labels[k] = pct(density(mask));
    // The closed form Σ N_l (1 - r_l)^k / Σ N_l, up to the per-round rounding of counts.
    let kept = 0, total = 0;
    for (const [n, size] of sizes) {
      kept += size * (1 - rates.get(n)!) ** k;
      total += size;
    }
    assert.ok(Math.abs(density(mask) - kept / total) < 2e-5, `${name} level ${k}: ${density(mask)} vs ${kept / total}`);
  }
  return labels;
}

test('Conv-2 density ladder (conv 10%, fc 20%, output 10%): 8.8% at level 11, 4.6% at level 14', () => {
  const labels = ladder('conv2', 14);
  assert.deepEqual([labels[11], labels[14]], ['8.8', '4.6']);
});

test('Conv-4 density ladder: 11.1% at level 11, 9.2% at level 12', () => {
  const labels = ladder('conv4', 12);
  assert.deepEqual([labels[11], labels[12]], ['11.1', '9.2']);
});

test('getModel(name, dataset): conv nets take a flat data set\'s images (MNIST as 1×28×28), sized for them; others unchanged', async () => {
  const { loadSplits } = await import('../training/run.js');
  const { resolveTraining } = await import('../training/hparams.js');
  const { Tensor } = await import('../tensor/tensor.js');
  assert.equal(getModel('conv2', 'cifar10'), getModel('conv2'), 'CIFAR-10: the model as registered');
  assert.equal(getModel('lenet_300_100', 'mnist'), getModel('lenet_300_100'), 'an MLP takes flat samples');
  const conv2 = getModel('conv2', 'mnist');
  assert.deepEqual(conv2.input, [1, 28, 28]);
  const m = conv2.build();
  assert.deepEqual(m.parameter('conv1.weight').shape, [64, 1, 3, 3]);
  assert.deepEqual(m.parameter('fc1.weight').shape, [256, 64 * 14 * 14]);
  // Conv-6 pools three times: 28 → 14 → 7 → 3.
  assert.deepEqual(getModel('conv6', 'fashion_mnist').build().parameter('fc1.weight').shape, [256, 256 * 3 * 3]);
  assert.deepEqual(getModel('conv2', 'mnist').withWidths!([8, 8, 16, 16]).parameter('fc1.weight').shape, [16, 8 * 14 * 14]);
  const y = m.forward(Tensor.zeros([2, 1, 28, 28]));
  assert.deepEqual(y.shape, [2, 10]);
  const splits = loadSplits(resolveTraining({ model: 'conv2', dataset: 'mnist' }));
  assert.deepEqual(splits.train.sampleShape, [1, 28, 28]);
  assert.deepEqual(loadSplits(resolveTraining({ model: 'lenet_300_100', dataset: 'mnist' })).test.sampleShape, [784]);
});
