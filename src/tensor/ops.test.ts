import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { linear, relu, softmaxCrossEntropy } from './ops.js';
import { gradCheck } from './gradcheck.js';
import { BufferArena, Tensor, noGrad } from './tensor.js';
import { Optimizer } from '../nn/optim.js';

function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  const t = Tensor.zeros(shape, true);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}


test('linear (no activation): gradient matches finite differences for x, W and b', () => {
  const rng = new Rng(1, 'test');
  const x = randomTensor([5, 7], rng), w = randomTensor([4, 7], rng, 0.5), b = randomTensor([4], rng);
  const labels = Int32Array.from([0, 3, 1, 2, 3]);
  const err = gradCheck(() => softmaxCrossEntropy(linear(x, w, b), labels), [x, w, b]);
  assert.ok(err < 1e-2, `max relative error ${err}`);
});

test('linear with fused ReLU: gradient matches finite differences', () => {
  const rng = new Rng(2, 'test');
  const x = randomTensor([6, 5], rng), w1 = randomTensor([8, 5], rng, 0.7), b1 = randomTensor([8], rng, 0.3);
  const w2 = randomTensor([3, 8], rng, 0.7), b2 = randomTensor([3], rng, 0.1);
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2]);
  const f = () => softmaxCrossEntropy(linear(linear(x, w1, b1, 'relu'), w2, b2), labels);
  const err = gradCheck(f, [x, w1, b1, w2, b2], { eps: 1e-3 });
  assert.ok(err < 2e-2, `max relative error ${err}`);
});

test('relu: gradient matches finite differences away from the kink', () => {
  const rng = new Rng(3, 'test');
  const x = randomTensor([4, 6], rng);
  for (let i = 0; i < x.size; i++) if (Math.abs(x.data[i]) < 0.1) x.data[i] = 0.5; // keep off the kink
  const w = randomTensor([3, 6], rng);
  const labels = Int32Array.from([2, 0, 1, 1]);
  const err = gradCheck(() => softmaxCrossEntropy(linear(relu(x), w, null), labels), [x, w]);
  assert.ok(err < 1e-2, `max relative error ${err}`);
});

test('softmaxCrossEntropy: value equals -log softmax and gradient matches finite differences', () => {
  const logits = new Tensor(Float32Array.from([1, 2, 3, 0, 0, 0]), [2, 3], true);
  const loss = softmaxCrossEntropy(logits, Int32Array.from([2, 1]));
  const expected = (-Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3))) + Math.log(3)) / 2;
  assert.ok(Math.abs(loss.data[0] - expected) < 1e-6, `${loss.data[0]} vs ${expected}`);
  const rng = new Rng(4, 'test');
  const x = randomTensor([7, 10], rng, 2);
  const labels = Int32Array.from([0, 9, 3, 3, 5, 1, 8]);
  assert.ok(gradCheck(() => softmaxCrossEntropy(x, labels), [x]) < 1e-2);
});

test('gradCheck detects a wrong gradient', () => {
  const rng = new Rng(5, 'test');
  const x = randomTensor([3, 4], rng);
  const labels = Int32Array.from([0, 1, 2]);
  const wrong = () => {
    const loss = softmaxCrossEntropy(x, labels);
    const inner = loss.backwardFn!;
    loss.backwardFn = () => { inner(); for (let i = 0; i < x.size; i++) x.grad![i] *= 2; };
    return loss;
  };
  assert.ok(gradCheck(wrong, [x]) > 0.05);
});

test('ops reject bad shapes and labels with clear errors', () => {
  const x = Tensor.zeros([2, 3]);
  assert.throws(() => linear(x, Tensor.zeros([4, 5]), null), /weight shape \[4, 5\] does not match input features 3/);
  assert.throws(() => linear(Tensor.zeros([6]), Tensor.zeros([4, 6]), null), /input must be rank 2/);
  assert.throws(() => softmaxCrossEntropy(x, Int32Array.from([0, 3])), /label 3 at row 1 is outside \[0, 3\)/);
  assert.throws(() => softmaxCrossEntropy(x, Int32Array.from([0])), /1 labels for 2 rows/);
});

test('a loss of NaN logits is NaN', () => {
  const x = new Tensor(Float32Array.from([NaN, 1, 2]), [1, 3]);
  assert.ok(Number.isNaN(softmaxCrossEntropy(x, Int32Array.from([1])).data[0]));
});

test('BufferArena: Tensor.empty reuses the previous run\'s buffers in order; outside a run it is zero-filled', () => {
  const arena = new BufferArena();
  const first = arena.run(() => [Tensor.empty([2, 3]).data, Tensor.empty([4]).data]);
  first[0].fill(5);
  const second = arena.run(() => [Tensor.empty([3, 2]).data, Tensor.empty([5]).data]);
  assert.equal(second[0], first[0], 'same size, same position: the same buffer, stale values kept');
  assert.equal(second[0][0], 5);
  assert.notEqual(second[1], first[1], 'a new size gets a new buffer');
  assert.deepEqual(Tensor.empty([3]).data, new Float32Array(3));
  // A forward pass in an arena gives the same values as without one.
  const rng = new Rng(3, 'test');
  const x = randomTensor([4, 6], rng), w = randomTensor([5, 6], rng), b = randomTensor([5], rng);
  const plain = noGrad(() => linear(x, w, b, 'relu').data.slice());
  for (let r = 0; r < 2; r++) assert.deepEqual(noGrad(() => arena.run(() => linear(x, w, b, 'relu').data.slice())), plain);
  // A training step in an arena: parameters' gradients are their own, an op's output gradient is recycled (zeroed).
  const labels = Int32Array.from([0, 1, 2, 3]);
  const step = () => arena.run(() => {
    const y = linear(x, w, b, 'relu');
    softmaxCrossEntropy(y, labels).backward();
    return { wGrad: w.grad!, yGrad: y.grad! };
  });
  const s1 = step();
  const g1 = s1.wGrad.slice();
  w.grad!.fill(0); b.grad!.fill(0); x.grad!.fill(0);
  const s2 = step();
  assert.equal(s2.yGrad, s1.yGrad, 'the output gradient buffer is reused');
  assert.equal(s2.wGrad, s1.wGrad, 'the weight keeps its gradient buffer');
  assert.deepEqual(s2.wGrad, g1, 'the same gradient again: the recycled buffers were zeroed');
});

test('after an optimiser step the weight gradients are overwritten, not added to; a read of .grad keeps them added to', () => {
  const rng = new Rng(9, 'test');
  const x = randomTensor([5, 7], rng), w = randomTensor([4, 7], rng, 0.5), b = randomTensor([4], rng);
  const labels = Int32Array.from([0, 3, 1, 2, 3]);
  const opt = new Optimizer([{ tensor: w, mask: null }, { tensor: b, mask: null }], { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 });
  const gradients = () => {
    const fresh = new Tensor(Float32Array.from(w.data), w.shape, true);
    softmaxCrossEntropy(linear(x, fresh, b), labels).backward();
    return Array.from(fresh.grad!);
  };
  softmaxCrossEntropy(linear(x, w, b), labels).backward();
  opt.step();
  assert.deepEqual(Array.from(w.grad!), new Array(w.size).fill(0), 'the step zeroes the gradient');
  // Reading .grad (above) ended the mark: a write through it is kept and added to.
  w.grad![0] = 1;
  const want = gradients();
  softmaxCrossEntropy(linear(x, w, b), labels).backward();
  assert.deepEqual(Array.from(w.grad!), want.map((g, i) => (i === 0 ? Math.fround(1 + g) : g)));
  opt.step();
  // Marked zero and left alone: the next product overwrites the buffer, with the same values.
  const sink = w.gradSink();
  assert.equal(sink.overwrite, true, 'a step marks the gradient zero');
  w.markGradZero();
  const after = gradients();
  softmaxCrossEntropy(linear(x, w, b), labels).backward();
  assert.deepEqual(Array.from(w.grad!), after);
  assert.throws(() => Tensor.zeros([2]).markGradZero(), /markGradZero: the tensor has no gradient buffer/);
});

test('softmaxCrossEntropy: a fresh gradient is overwritten, one that earlier passes reached is added to', () => {
  const rng = new Rng(10, 'test');
  const logits = randomTensor([3, 4], rng), labels = Int32Array.from([0, 3, 1]);
  softmaxCrossEntropy(logits, labels).backward();
  const once = Array.from(logits.grad!);
  softmaxCrossEntropy(logits, labels).backward();
  assert.deepEqual(Array.from(logits.grad!), once.map((g) => Math.fround(g + g)));
});
