import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getModel } from '../models/registry.js';
import { stepFlops, weightMacs, maskDensities } from './flops.js';

test('weightMacs: LeNet-300-100 and Conv-2 per sample, in forward order; stepFlops dense and sparse', () => {
  const lenet = weightMacs(getModel('lenet_300_100').build(), [784]);
  assert.deepEqual(lenet, [
    { name: 'fc1.weight', macs: 784 * 300, first: true }, { name: 'fc2.weight', macs: 300 * 100, first: false }, { name: 'fc3.weight', macs: 100 * 10, first: false },
  ]);
  const conv2 = weightMacs(getModel('conv2').build(), [3, 32, 32]);
  assert.deepEqual(conv2.map((w) => [w.name, w.macs]), [
    ['conv1.weight', 64 * 3 * 9 * 32 * 32], ['conv2.weight', 64 * 64 * 9 * 32 * 32], ['fc1.weight', 16384 * 256], ['fc2.weight', 256 * 256], ['fc3.weight', 256 * 10],
  ]);
  const dense = 2 * (2 * 784 * 300 + 3 * 300 * 100 + 3 * 100 * 10);
  assert.deepEqual(stepFlops(lenet, new Map(), new Set()), { actual: dense, dense });
  const masks = new Map([['fc1.weight', new Float32Array(784 * 300).map((_, i) => (i % 10 === 0 ? 1 : 0))]]);
  const d = maskDensities(masks);
  assert.equal(d.get('fc1.weight'), 23520 / 235200);
  // A masked layer computed dense costs all of it; on sparse kernels its nonzeros' share.
  assert.deepEqual(stepFlops(lenet, d, new Set()), { actual: dense, dense });
  assert.deepEqual(stepFlops(lenet, d, new Set(['fc1.weight'])), { actual: dense - 2 * 2 * 784 * 300 * 0.9, dense });
});
