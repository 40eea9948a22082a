/**
 * The batch-norm and residual modules: BatchNorm2d's PyTorch state (names, initial values,
 * num_batches_tracked counted in training mode only, nothing prunable), finite-difference
 * gradient checks through whole BasicBlocks (identity and projection shortcut, training and
 * evaluation mode), descriptions rebuilt by buildModule with clear errors, and the block's
 * parameter names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { gradCheck } from '../tensor/gradcheck.js';
import { flatten } from '../tensor/conv.js';
import { linear, softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { buildModule } from './build.js';
import { Conv2d } from './layers.js';
import { BatchNorm2d, GlobalAvgPool2d } from './norm.js';
import { BasicBlock } from './residual.js';

function randomTensor(shape: number[], rng: Rng, scale = 1, requiresGrad = true): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

test("BatchNorm2d: PyTorch's names and initial state, counts training passes only, nothing prunable", () => {
  const bn = new BatchNorm2d(3, 'relu');
  assert.deepEqual(bn.namedParameters().map(([n, t]) => [n, t.shape]), [['weight', [3]], ['bias', [3]]]);
  assert.deepEqual(bn.namedBuffers().map(([n, t]) => [n, t.shape]), [['running_mean', [3]], ['running_var', [3]], ['num_batches_tracked', []]]);
  assert.deepEqual(bn.prunable(), []);
  const state = () => Object.fromEntries([...bn.state()].map(([n, v]) => [n, Array.from(v)]));
  assert.deepEqual(state(), { weight: [1, 1, 1], bias: [0, 0, 0], running_mean: [0, 0, 0], running_var: [1, 1, 1], num_batches_tracked: [0] });
  const x = randomTensor([2, 3, 2, 2], new Rng(1, 'test'));
  noGrad(() => bn.forward(x));
  bn.forward(x);
  assert.equal(bn.numBatchesTracked.data[0], 2);
  bn.eval();
  bn.forward(x);
  assert.equal(bn.numBatchesTracked.data[0], 2, 'evaluation passes are not counted');
  bn.initialize();
  assert.deepEqual(state(), { weight: [1, 1, 1], bias: [0, 0, 0], running_mean: [0, 0, 0], running_var: [1, 1, 1], num_batches_tracked: [0] });
  // The residual join: counted as a training pass, and only for a layer without its own activation.
  const plain = new BatchNorm2d(3);
  const r = randomTensor([2, 3, 2, 2], new Rng(2, 'test'));
  const joined = noGrad(() => plain.forwardResidual(x, r, 'relu'));
  assert.equal(plain.numBatchesTracked.data[0], 1);
  plain.eval();
  const apart = noGrad(() => plain.forward(x));
  for (let i = 0; i < x.size; i++) assert.ok(joined.data[i] >= 0);
  assert.ok(apart.data.some((v) => v < 0), 'the join applies the ReLU, the layer alone does not');
  assert.throws(() => bn.forwardResidual(x, r, 'relu'), /BatchNorm2d.forwardResidual: the layer has its own activation \(relu\)/);
});

test('BasicBlock: gradients of the input and every parameter match finite differences (identity and projection, both modes)', () => {
  for (const [cin, cout, down] of [[3, 3, false], [2, 4, true], [2, 3, false]] as const) {
    for (const training of [true, false]) {
      const rng = new Rng(2, 'test');
      const block = new BasicBlock(cin, cout, down);
      block.initialize(rng);
      // Statistics and affine maps away from their initial values, so evaluation mode is not the identity.
      for (const [n, t] of block.namedTensors()) {
        if (n.endsWith('running_var')) t.data.forEach((_, i) => { t.data[i] = 0.5 + rng.uniform(); });
        else if (n.endsWith('running_mean') || n.endsWith('bn1.bias') || n.endsWith('bn2.bias')) t.data.forEach((_, i) => { t.data[i] = 0.2 * rng.normal(); });
        else if (n.endsWith('bn1.weight') || n.endsWith('bn2.weight')) t.data.forEach((_, i) => { t.data[i] = 1 + 0.2 * rng.normal(); });
      }
      block.train(training);
      const x = randomTensor([3, cin, 5, 5], rng);
      const out = noGrad(() => block.forward(x));
      const head = randomTensor([3, out.size / 3], rng, 0.3, false), labels = Int32Array.of(0, 1, 2);
      const f = () => softmaxCrossEntropy(linear(flatten(block.forward(x)), head, null), labels);
      // A small step, so that ±eps crosses no ReLU kink with these seeds (a crossing would show as a large error).
      const err = gradCheck(f, [x, ...block.namedParameters().map(([, t]) => t)], { eps: 1e-3, samples: 12 });
      assert.ok(err < 2e-2, `${cin}->${cout}${down ? ' downsampling' : ''} training=${training}: max relative error ${err}`);
    }
  }
});

test('BasicBlock: parameter names as PyTorch gives them, projection only where the shape changes', () => {
  const names = (b: BasicBlock) => b.namedTensors().map(([n]) => n);
  const identity = new BasicBlock(16, 16, false);
  assert.deepEqual(identity.namedParameters().map(([n]) => n), ['conv1.weight', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'bn2.weight', 'bn2.bias']);
  const down = new BasicBlock(16, 32, true);
  assert.ok(names(down).includes('shortcut.0.weight') && names(down).includes('shortcut.1.running_var'));
  assert.deepEqual((down.namedChildren()[4][1].namedChildren()[0][1] as Conv2d).geometry, { strideH: 2, strideW: 2, padH: 0, padW: 0 });
  assert.deepEqual(noGrad(() => down.eval().forward(Tensor.zeros([1, 16, 8, 8]))).shape, [1, 32, 4, 4]);
});

test('descriptions rebuild the same modules; bad ones are clear errors', () => {
  for (const m of [new BatchNorm2d(4, 'relu', 0.05, 1e-3), new GlobalAvgPool2d(), new BasicBlock(4, 8, true), new Conv2d(3, 4, 3, { bias: false, init: 'kaiming' })]) {
    const copy = buildModule(JSON.parse(JSON.stringify(m.describe())));
    assert.deepEqual(copy.describe(), m.describe());
    assert.deepEqual([...copy.shapes()], [...m.shapes()]);
  }
  assert.deepEqual(new BatchNorm2d(4).describe(), { type: 'batch_norm2d', channels: 4, activation: 'none' }, 'defaults are left out');
  assert.deepEqual(new Conv2d(3, 4, 3).describe().bias, undefined, 'a conv with bias describes as before');
  assert.throws(() => buildModule({ type: 'batch_norm2d' }), /module 'batch_norm2d': 'channels' must be a number, got undefined/);
  assert.throws(() => buildModule({ type: 'conv2d', in: 1, out: 1, kernel: [1, 1], stride: [1, 1], padding: [0, 0], init: 'he' }), /'init' must be 'glorot' or 'kaiming', got "he"/);
  assert.throws(() => new BatchNorm2d(0), /BatchNorm2d: channels must be a positive integer, got 0/);
});
