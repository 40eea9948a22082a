import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { Dataset, checkDataDir, labelArray, sampleArray, splitValidation } from './dataset.js';
import type { DatasetSpec } from './spec.js';

/** One CIFAR-10 binary record: a label byte, then 3×32×32 pixel bytes (R plane, G plane, B plane). */
export const CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32;
export const CIFAR_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR_TEST_FILE = 'test_batch.bin';

/** Per-channel mean and std of the CIFAR-10 training pixels in [0, 1]. */
export const CIFAR_NORMALIZATION = { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] } as const;

/** Reads CIFAR-10 binary files (the official "binary version") into one normalised data set. */
export function readCifarFiles(files: string[]): Dataset {
  const buffers = files.map((file) => {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch (e) {
      throw new LthError(`CIFAR-10 file '${file}' cannot be read: ${(e as Error).message}`);
    }
    if (buf.length === 0 || buf.length % CIFAR_RECORD_BYTES !== 0) {
      throw new LthError(`CIFAR-10 file '${file}' has ${buf.length} bytes, not a whole number of ${CIFAR_RECORD_BYTES}-byte records (truncated or not the binary version?)`);
    }
    return { file, buf };
  });
  const n = buffers.reduce((a, b) => a + b.buf.length / CIFAR_RECORD_BYTES, 0);
  const plane = 32 * 32;
  const images = sampleArray(n * 3 * plane);
  const labels = labelArray(n);
  let row = 0;
  for (const { file, buf } of buffers) {
    for (let r = 0; r < buf.length / CIFAR_RECORD_BYTES; r++, row++) {
      const o = r * CIFAR_RECORD_BYTES;
      const label = buf[o];
      if (label > 9) throw new LthError(`CIFAR-10 file '${file}': record ${r} has label ${label}, outside [0, 10)`);
      labels[row] = label;
      for (let c = 0; c < 3; c++) {
        const mean = CIFAR_NORMALIZATION.mean[c], std = CIFAR_NORMALIZATION.std[c];
        const src = o + 1 + c * plane, dst = (row * 3 + c) * plane;
        for (let p = 0; p < plane; p++) images[dst + p] = (buf[src + p] / 255 - mean) / std;
      }
    }
  }
  return new Dataset(images, labels, [3, 32, 32], 10);
}

/** The directory holding the .bin files: `dir` itself or its `cifar-10-batches-bin` subdirectory. */
export function cifarDir(dir: string, howToGet: string): string {
  checkDataDir('cifar10', dir, howToGet);
  for (const d of [dir, path.join(dir, 'cifar-10-batches-bin')]) {
    if (fs.existsSync(path.join(d, CIFAR_TEST_FILE))) {
      const missing = CIFAR_TRAIN_FILES.filter((f) => !fs.existsSync(path.join(d, f)));
      if (missing.length) throw new LthError(`cifar10: '${d}' lacks ${missing.join(', ')}. ${howToGet}`);
      return d;
    }
  }
  if (fs.existsSync(path.join(dir, 'cifar-10-batches-py')) || fs.existsSync(path.join(dir, 'test_batch'))) {
    throw new LthError(`cifar10: '${dir}' holds CIFAR-10's python version (pickled batches); lth reads the binary version. ${howToGet}`);
  }
  throw new LthError(`cifar10: '${dir}' has no ${CIFAR_TEST_FILE} (nor a cifar-10-batches-bin/ with it). ${howToGet}`);
}

const CIFAR_HOW_TO_GET = 'Download the CIFAR-10 binary version (cifar-10-binary.tar.gz) from the CIFAR-10 home page, unpack it and pass --data-dir pointing at cifar-10-batches-bin/ (or its parent).';

/** CIFAR-10, the official binary version, read from --data-dir. */
export const cifar10: DatasetSpec = {
  name: 'cifar10',
  description: 'CIFAR-10, 50k train (45k/5k split) + 10k test, official binary version read from --data-dir',
  sampleShape: [3, 32, 32], numClasses: 10, validationSize: 5000, howToGet: CIFAR_HOW_TO_GET,
  black: CIFAR_NORMALIZATION.mean.map((m, c) => -m / CIFAR_NORMALIZATION.std[c]),
  load(dataDir, seed) {
    if (!dataDir) throw new LthError(`cifar10: no data directory; pass --data-dir DIR. ${CIFAR_HOW_TO_GET}`);
    const dir = cifarDir(dataDir, CIFAR_HOW_TO_GET);
    const trainAll = readCifarFiles(CIFAR_TRAIN_FILES.map((f) => path.join(dir, f)));
    const test = readCifarFiles([path.join(dir, CIFAR_TEST_FILE)]);
    return splitValidation('cifar10', trainAll, test, Math.min(this.validationSize, Math.floor(trainAll.length / 2)), seed);
  },
};
