import type { Splits } from './dataset.js';

/** A data set a user can name (--dataset): how to load it, split by a seed, from a directory or its own files. */
export interface DatasetSpec {
  readonly name: string;
  readonly description: string;
  /** Shape of one example as the models see it. */
  readonly sampleShape: readonly number[];
  readonly numClasses: number;
  readonly validationSize: number;
  /** Where to get the files, for the error when a directory lacks them. */
  readonly howToGet: string;
  /**
   * The normalised value of a black pixel, per channel, for image data sets: what random
   * crops pad with (torchvision pads the raw image with black before normalising).
   */
  readonly black?: readonly number[];
  /**
   * For a data set stored flat ([784]), the shape of one example as an image (channels,
   * height, width): what a model that takes images (a conv net) is fed.
   */
  readonly imageShape?: readonly number[];
  load(dataDir: string | undefined, seed: number): Splits;
}
