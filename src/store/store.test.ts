import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors } from './safetensors.js';

test('safetensors: round trip, 8-byte aligned data, header as the format specifies', () => {
  const tensors = new Map([
    ['fc1.weight', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }],
    ['fc1.bias', { shape: [2], data: Float32Array.from([0.25, NaN]) }],
  ]);
  const buf = encodeSafetensors(tensors, { format: 'pt' });
  const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(Buffer.from(buf.subarray(8, 8 + n)).toString());
  assert.deepEqual(header['fc1.bias'], { dtype: 'F32', shape: [2], data_offsets: [0, 8] });
  assert.deepEqual(header['fc1.weight'], { dtype: 'F32', shape: [2, 3], data_offsets: [8, 32] });
  const back = decodeSafetensors(buf);
  assert.deepEqual([...back.get('fc1.weight')!.data], [1, 2, 3, 4, 5, -6.5]);
  assert.ok(Number.isNaN(back.get('fc1.bias')!.data[1]));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-st-'));
  saveSafetensors(path.join(dir, 'a.safetensors'), tensors);
  assert.deepEqual(loadSafetensors(path.join(dir, 'a.safetensors')).get('fc1.weight')!.shape, [2, 3]);
  assert.deepEqual(fs.readdirSync(dir), ['a.safetensors']); // no temporary left behind
});

test('safetensors: corrupt files are clear errors', () => {
  const buf = encodeSafetensors(new Map([['w', { shape: [4], data: new Float32Array(4) }]]));
  assert.throws(() => decodeSafetensors(buf.subarray(0, 4), 'f'), /f: truncated/);
  assert.throws(() => decodeSafetensors(buf.subarray(0, 20), 'f'), /header length \d+ runs past the end/);
  assert.throws(() => decodeSafetensors(buf.subarray(0, buf.length - 4), 'f'), /tensor 'w' has bad offsets/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-st-'));
  assert.throws(() => loadSafetensors(path.join(dir, 'none.safetensors')), { name: 'LthError', message: /none\.safetensors does not exist/ });
  assert.throws(() => loadSafetensors(dir), { name: 'LthError', message: /cannot read .* \(EISDIR\)/ });
});
