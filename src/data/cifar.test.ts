import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CIFAR_NORMALIZATION, CIFAR_RECORD_BYTES, readCifarFiles } from './cifar.js';
import { getDataset } from './registry.js';
import { cifarRecords, writeCifarDir } from './testing.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-cifar-'));

test('CIFAR-10 reader: planes become [3, 32, 32] with per-channel normalisation', () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'a.bin'), cifarRecords(3));
  const d = readCifarFiles([path.join(dir, 'a.bin')]);
  assert.deepEqual(d.sampleShape, [3, 32, 32]);
  assert.deepEqual([...d.labels], [0, 1, 2]);
  // Record 2, channel 1 (green), pixel 5: byte (2*7 + (1024+5)*13) % 256.
  const byte = (2 * 7 + (1024 + 5) * 13) % 256;
  const expected = (byte / 255 - CIFAR_NORMALIZATION.mean[1]) / CIFAR_NORMALIZATION.std[1];
  assert.ok(Math.abs(d.images[2 * 3072 + 1024 + 5] - expected) < 1e-6);
});

test('CIFAR-10 directory: 45k/5k-style split, subdirectory found, clear errors', () => {
  const parent = tmp();
  const dir = path.join(parent, 'cifar-10-batches-bin');
  writeCifarDir(dir, 20);
  const s = getDataset('cifar10').load(parent, 0);
  assert.equal(s.train.length + s.validation.length, 100);
  assert.equal(s.validation.length, 50);
  assert.equal(s.test.length, 20);

  fs.writeFileSync(path.join(dir, 'data_batch_3.bin'), cifarRecords(2).subarray(0, CIFAR_RECORD_BYTES + 100));
  assert.throws(() => getDataset('cifar10').load(dir, 0), /data_batch_3.bin' has 3173 bytes, not a whole number of 3073-byte records/);
  fs.writeFileSync(path.join(dir, 'data_batch_3.bin'), cifarRecords(4, (i) => (i === 2 ? 10 : 0)));
  assert.throws(() => getDataset('cifar10').load(dir, 0), /data_batch_3.bin': record 2 has label 10, outside \[0, 10\)/);
  fs.rmSync(path.join(dir, 'data_batch_5.bin'));
  assert.throws(() => getDataset('cifar10').load(dir, 0), /lacks data_batch_5.bin/);
  assert.throws(() => getDataset('cifar10').load(tmp(), 0), /has no test_batch.bin .*binary version/);
  assert.throws(() => getDataset('cifar10').load(undefined, 0), /pass --data-dir/);
});
