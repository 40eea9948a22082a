import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { getBackend } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import { Rng } from '../core/rng.js';

/**
 * Normalised examples: images [n, ...sampleShape] as float32 (token ids of a sequence data
 * set as exact small integers), labels [n, ...labelShape] as int32: one class per example,
 * or one per position for a sequence model (a language model's next token at each step).
 */
export class Dataset {
  constructor(
    readonly images: Float32Array,
    readonly labels: Int32Array,
    /** Shape of one example, e.g. [784] for MNIST fed to an MLP, [3, 32, 32] for CIFAR, [T] for T tokens. */
    readonly sampleShape: readonly number[],
    readonly numClasses: number,
    /** Shape of one example's labels: [] (one class) by default, [T] for a class per position. */
    readonly labelShape: readonly number[] = [],
  ) {
    check(labels.length % this.labelSize === 0 && images.length === (labels.length / this.labelSize) * this.sampleSize,
      `dataset: ${images.length} pixel values and ${labels.length} labels do not make examples of shape [${sampleShape.join(', ')}]` +
      (labelShape.length ? ` with labels [${labelShape.join(', ')}]` : ''));
  }

  get length(): number {
    return this.labels.length / this.labelSize;
  }

  get sampleSize(): number {
    return this.sampleShape.reduce((a, b) => a * b, 1);
  }

  /** Labels per example: 1, or the positions of a per-position target. */
  get labelSize(): number {
    return this.labelShape.reduce((a, b) => a * b, 1);
  }

  /** Copies the examples `indices[from..from+count)` into the given batch buffers (labels: count·labelSize entries). */
  gather(indices: Int32Array, from: number, count: number, images: Float32Array, labels: Int32Array): void {
    getBackend().gatherRows(this.images, this.sampleSize, indices, from, count, images);
    const l = this.labelSize;
    if (l === 1) {
      for (let b = 0; b < count; b++) labels[b] = this.labels[indices[from + b]];
    } else {
      for (let b = 0; b < count; b++) labels.set(this.labels.subarray(indices[from + b] * l, (indices[from + b] + 1) * l), b * l);
    }
  }

  subset(indices: Int32Array): Dataset {
    const d = this.sampleSize;
    const images = sampleArray(indices.length * d);
    const labels = labelArray(indices.length * this.labelSize);
    this.gather(indices, 0, indices.length, images, labels);
    return new Dataset(images, labels, this.sampleShape, this.numClasses, this.labelShape);
  }
}

/** The three splits every experiment uses. */
export interface Splits {
  readonly name: string;
  readonly train: Dataset;
  readonly validation: Dataset;
  readonly test: Dataset;
}

/** What a split draws its examples from: a data set, or undecoded bytes (ByteSamples). */
export interface Samples {
  readonly length: number;
  subset(indices: Int32Array): Dataset;
}

/**
 * Examples kept as the bytes of their files (unsigned pixels) with their labels: a subset
 * is normalised straight from the bytes through a byte -> float table, so a split writes
 * each example's floats once instead of decoding the whole file first and copying.
 */
export class ByteSamples implements Samples {
  private readonly table: Float32Array;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly labels: Int32Array,
    readonly sampleShape: readonly number[],
    readonly numClasses: number,
    mean: number,
    std: number,
  ) {
    this.table = normalizationTable(mean, std);
    const size = sampleShape.reduce((a, b) => a * b, 1);
    check(bytes.length === labels.length * size,
      `dataset: ${bytes.length} pixel values do not make ${labels.length} examples of shape [${sampleShape.join(', ')}]`);
  }

  get length(): number {
    return this.labels.length;
  }

  subset(indices: Int32Array): Dataset {
    const d = this.bytes.length / this.labels.length || 0;
    const images = sampleArray(indices.length * d);
    const labels = labelArray(indices.length);
    const { table, bytes } = this;
    for (let r = 0; r < indices.length; r++) {
      const src = indices[r] * d, dst = r * d;
      for (let j = 0; j < d; j++) images[dst + j] = table[bytes[src + j]];
      labels[r] = this.labels[indices[r]];
    }
    return new Dataset(images, labels, this.sampleShape, this.numClasses);
  }

  /** Every example, in file order. */
  all(): Dataset {
    return this.subset(Int32Array.from({ length: this.length }, (_, i) => i));
  }
}

/**
 * Holds out `validationSize` random training examples (a permutation drawn from the
 * 'split' stream of `seed`), as the paper does: MNIST 55,000/5,000, CIFAR 45,000/5,000.
 */
export function splitValidation(name: string, trainAll: Samples, test: Dataset, validationSize: number, seed: number): Splits {
  check(trainAll.length >= 2, `${name}: ${trainAll.length} training example${trainAll.length === 1 ? '' : 's'}; a validation split needs at least 2`);
  check(validationSize > 0 && validationSize < trainAll.length,
    `${name}: validation size ${validationSize} must be between 1 and ${trainAll.length - 1}`);
  const perm = new Rng(seed, 'split').permutation(trainAll.length);
  const validation = trainAll.subset(perm.subarray(0, validationSize).slice().sort());
  const train = trainAll.subset(perm.subarray(validationSize).slice().sort());
  return { name, train, validation, test };
}

/**
 * A zeroed array for a data set's samples, in shared memory: the evaluation thread reads
 * the same samples without a copy. Minibatches read it at random rows, so it asks for
 * 2 MiB pages: gathering 60 MNIST rows took each core 28-31 µs instead of 34-44
 * (instrumented fused step, three interleaved pairs of runs).
 */
export function sampleArray(n: number): Float32Array {
  const a = new Float32Array(new SharedArrayBuffer(n * Float32Array.BYTES_PER_ELEMENT));
  getBackend().adviseHugePages(a);
  return a;
}

/** A zeroed array for a data set's labels, in shared memory like its samples. */
export function labelArray(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * Int32Array.BYTES_PER_ELEMENT));
}

/** Bytes 0..255 -> (x/255 - mean) / std, computed in double and rounded once to float32. */
export function normalizationTable(mean: number, std: number): Float32Array {
  return new Float32Array(256).map((_, b) => (b / 255 - mean) / std);
}

/** That `dir`, a data set's --data-dir, is a directory lth can read: an LthError naming what is wrong otherwise. */
export function checkDataDir(name: string, dir: string, howToGet: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LthError(code === 'ENOENT' ? `${name}: data directory '${dir}' does not exist. ${howToGet}` : `${name}: data directory '${dir}' cannot be read (${code})`);
  }
  if (!stat.isDirectory()) throw new LthError(`${name}: data directory '${dir}' is not a directory (give the directory that holds the files). ${howToGet}`);
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch (e) {
    throw new LthError(`${name}: data directory '${dir}' cannot be read (${(e as NodeJS.ErrnoException).code})`);
  }
}

/**
 * A fingerprint of a data set's examples that does not depend on how a seed splits them:
 * 16 hex digits for the training and validation examples together and 16 for the test
 * set, each the sum (mod 2⁶⁴) of every example's SHA-256 (its normalised values and its
 * labels). Two loads of the same files give the same fingerprint for every seed; other
 * files (another --data-dir) give another. About a quarter of a second for MNIST.
 */
export function splitsFingerprint(s: Splits): string {
  const sum = (sets: Dataset[]) => {
    let acc = 0n;
    for (const d of sets) {
      const sample = d.sampleSize * 4, label = d.labelSize * 4;
      for (let i = 0; i < d.length; i++) {
        const h = createHash('sha256')
          .update(new Uint8Array(d.images.buffer, d.images.byteOffset + i * sample, sample))
          .update(new Uint8Array(d.labels.buffer, d.labels.byteOffset + i * label, label))
          .digest();
        acc = (acc + h.readBigUInt64LE(0)) & 0xffffffffffffffffn;
      }
    }
    return acc.toString(16).padStart(16, '0');
  };
  return `${sum([s.train, s.validation])}${sum([s.test])}`;
}
