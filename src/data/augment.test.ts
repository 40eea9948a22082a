/**
 * Augmentation: random crops and flips by hand on a tiny image (against an independent
 * pad-crop-flip), the same bytes for the same (seed, epoch) whatever the batch boundaries,
 * other bytes for another epoch, labels untouched, and the errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { AugmentedEpoch, augmentationFor } from './augment.js';
import { cifar10 } from './cifar.js';
import { Dataset } from './dataset.js';
import { getDataset } from './registry.js';

function images(n: number, c: number, h: number, w: number): Dataset {
  const data = new Float32Array(n * c * h * w).map((_, i) => i + 1);
  return new Dataset(data, Int32Array.from({ length: n }, (_, i) => i % 3), [c, h, w], 3);
}

/** Pad with `fill`, take the window at (oy, ox), flip it: the recipe spelt out step by step. */
function byHand(src: Float32Array, c: number, h: number, w: number, pad: number, fill: readonly number[], oy: number, ox: number, flip: boolean): Float32Array {
  const ph = h + 2 * pad, pw = w + 2 * pad;
  const padded = new Float32Array(c * ph * pw);
  for (let k = 0; k < c; k++) {
    padded.fill(fill[k], k * ph * pw, (k + 1) * ph * pw);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) padded[k * ph * pw + (y + pad) * pw + x + pad] = src[k * h * w + y * w + x];
  }
  const out = new Float32Array(c * h * w);
  for (let k = 0; k < c; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[k * h * w + y * w + x] = padded[k * ph * pw + (y + oy) * pw + (flip ? w - 1 - x : x) + ox];
    }
  }
  return out;
}

test('crop_flip: each sample is a padded, cropped, maybe flipped copy, drawn from (seed, "augment", epoch, position)', () => {
  const [c, h, w] = [2, 5, 6];
  const base = images(8, c, h, w);
  const aug = { pad: 2, flip: true, fill: [-7, -9] };
  const view = new AugmentedEpoch(base, aug, 11, 3);
  const order = Int32Array.from([5, 2, 7, 0, 1, 3, 6, 4]);
  const x = new Float32Array(8 * c * h * w), labels = new Int32Array(8);
  view.gather(order, 0, 8, x, labels);
  const size = c * h * w;
  const seen = new Set<string>();
  for (let p = 0; p < 8; p++) {
    const rng = new Rng(11, 'augment', 3, p);
    const oy = rng.int(5), ox = rng.int(5), flip = rng.int(2) === 1;
    seen.add(`${oy},${ox},${flip}`);
    const want = byHand(base.images.subarray(order[p] * size, (order[p] + 1) * size), c, h, w, 2, aug.fill, oy, ox, flip);
    assert.deepEqual(x.subarray(p * size, (p + 1) * size), want, `position ${p}`);
    assert.equal(labels[p], base.labels[order[p]]);
  }
  assert.ok(seen.size > 1, 'the draws differ from sample to sample');
});

test('crop_flip: the same bytes for the same (seed, epoch) in any batch split; another epoch or seed, other bytes', () => {
  const base = images(16, 3, 8, 8);
  const aug = { pad: 4, flip: true, fill: [0, 0, 0] };
  const order = new Rng(1, 'data', 0).permutation(16);
  const size = 3 * 64;
  const all = (seed: number, epoch: number, split: number[]) => {
    const view = new AugmentedEpoch(base, aug, seed, epoch);
    const x = new Float32Array(16 * size), labels = new Int32Array(16);
    let from = 0;
    for (const n of split) {
      view.gather(order, from, n, x.subarray(from * size), labels.subarray(from));
      from += n;
    }
    return x;
  };
  const a = all(1, 0, [16]);
  assert.deepEqual(all(1, 0, [5, 3, 8]), a);
  assert.notDeepEqual(all(1, 1, [16]), a);
  assert.notDeepEqual(all(2, 0, [16]), a);
});

test('augmentationFor: none, crop_flip with black padding for CIFAR-10, errors for flat samples and unknown names', () => {
  assert.equal(augmentationFor('none', cifar10), undefined);
  const a = augmentationFor('crop_flip', cifar10)!;
  assert.equal(a.pad, 4);
  assert.ok(Math.abs(a.fill[0] - -0.4914 / 0.2470) < 1e-12, 'black, normalised');
  assert.throws(() => augmentationFor('crop_flip', getDataset('mnist')), /--augment crop_flip is CIFAR's recipe \(black padding, random crops, horizontal flips\) for colour images such as cifar10's; mnist is not such a data set/);
  assert.throws(() => augmentationFor('mixup', cifar10), /--augment: expected one of none, crop_flip, got 'mixup'/);
});
