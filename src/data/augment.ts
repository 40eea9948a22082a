import { LthError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { Dataset } from './dataset.js';
import type { DatasetSpec } from './spec.js';

/** The augmentations a run can name (--augment). */
export const AUGMENTATIONS = ['none', 'crop_flip'] as const;
export type AugmentationName = (typeof AUGMENTATIONS)[number];

/** Random crops after `pad` pixels of padding on each side, and horizontal flips with probability 1/2. */
export interface Augmentation {
  readonly pad: number;
  readonly flip: boolean;
  /** The value padding takes, per channel (a black pixel, normalised). */
  readonly fill: readonly number[];
}

/**
 * The augmentation `name` for a data set, or undefined for 'none'. 'crop_flip' is the
 * CIFAR recipe of He et al. (2016) and open_lth: 4 pixels of black padding, a random
 * 32×32 crop, a horizontal flip half of the time. It needs image samples (channels,
 * height, width).
 */
export function augmentationFor(name: string, spec: DatasetSpec): Augmentation | undefined {
  if (name === 'none') return undefined;
  if (name !== 'crop_flip') throw new LthError(`--augment: expected one of ${AUGMENTATIONS.join(', ')}, got '${name}'`);
  if (spec.sampleShape.length !== 3 || !spec.black) {
    throw new LthError(`--augment crop_flip is CIFAR's recipe (black padding, random crops, horizontal flips) for colour images such as cifar10's; ${spec.name} is not such a data set`);
  }
  return { pad: 4, flip: true, fill: spec.black };
}

/**
 * The training set as epoch `epoch` sees it: each minibatch gathered is cropped and
 * flipped on the fly. Sample position p of the epoch's order draws its crop offsets and
 * flip from the stream (seed, 'augment', epoch, p), so a run augments the same bytes
 * every time, whichever program gathers it and whatever the batch boundaries.
 */
export class AugmentedEpoch extends Dataset {
  private readonly scratch: Float32Array;

  constructor(private readonly base: Dataset, private readonly aug: Augmentation, private readonly seed: number, private readonly epoch: number) {
    super(base.images, base.labels, base.sampleShape, base.numClasses);
    if (base.sampleShape.length !== 3 || aug.fill.length !== base.sampleShape[0]) {
      throw new Error(`augment: samples [${base.sampleShape.join(', ')}] with ${aug.fill.length} fill values`);
    }
    this.scratch = new Float32Array(this.sampleSize);
  }

  override gather(indices: Int32Array, from: number, count: number, images: Float32Array, labels: Int32Array): void {
    this.base.gather(indices, from, count, images, labels);
    const size = this.sampleSize;
    for (let b = 0; b < count; b++) this.augment(images.subarray(b * size, (b + 1) * size), new Rng(this.seed, 'augment', this.epoch, from + b));
  }

  /** One sample in place: out[c, y, x] = padded[c, y + oy, x' + ox] with x' = W−1−x when flipped. */
  private augment(sample: Float32Array, rng: Rng): void {
    const [channels, h, w] = this.sampleShape;
    const { pad, flip, fill } = this.aug;
    const dy = rng.int(2 * pad + 1) - pad, dx = rng.int(2 * pad + 1) - pad;
    const flipped = flip && rng.int(2) === 1;
    const src = this.scratch;
    src.set(sample);
    for (let c = 0; c < channels; c++) {
      const plane = c * h * w;
      for (let y = 0; y < h; y++) {
        const sy = y + dy;
        for (let x = 0; x < w; x++) {
          const sx = (flipped ? w - 1 - x : x) + dx;
          sample[plane + y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[plane + sy * w + sx] : fill[c];
        }
      }
    }
  }
}
