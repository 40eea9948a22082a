/**
 * CIFAR-10 files for tests, in the exact on-disk format (the official binary version): a
 * test's data where the real data set cannot be embedded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CIFAR_RECORD_BYTES, CIFAR_TEST_FILE, CIFAR_TRAIN_FILES } from './cifar.js';

/** `n` records in the official CIFAR-10 binary layout: label byte, then R, G, B planes of 32×32. */
export function cifarRecords(n: number, labelFor: (i: number) => number = (i) => i % 10): Buffer {
  const buf = Buffer.alloc(n * CIFAR_RECORD_BYTES);
  for (let i = 0; i < n; i++) {
    const o = i * CIFAR_RECORD_BYTES;
    buf[o] = labelFor(i);
    for (let p = 0; p < 3072; p++) buf[o + 1 + p] = (i * 7 + p * 13) % 256;
  }
  return buf;
}

/** A directory shaped like cifar-10-batches-bin/ with `perFile` records in each file. */
export function writeCifarDir(dir: string, perFile: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of [...CIFAR_TRAIN_FILES, CIFAR_TEST_FILE]) fs.writeFileSync(path.join(dir, f), cifarRecords(perFile));
}
