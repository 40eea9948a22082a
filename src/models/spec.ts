import type { Model } from '../nn/model.js';

/** What the paper trains a model with; used as the defaults of every run of it. */
export interface TrainingDefaults {
  readonly dataset: string;
  readonly steps: string;
  readonly batchSize: number;
  readonly optimizer: 'adam' | 'sgd';
  readonly lr: number;
  /** SGD's momentum and weight decay when the run trains with SGD; absent: 0. */
  readonly momentum?: number;
  readonly weightDecay?: number;
  /** The learning-rate schedule ('step:80ep,120ep') and its factor; absent: constant. */
  readonly lrSchedule?: string;
  readonly lrGamma?: number;
}

/** How lotteries of a model prune by default (--strategy, --ignore); absent: magnitude_layerwise, nothing ignored. */
export interface PruningDefaults {
  readonly strategy: string;
  /** Weights the strategy leaves untouched when it is global ('fc.weight': the output layer). */
  readonly ignore: readonly string[];
}

export interface ModelSpec {
  readonly name: string;
  readonly description: string;
  readonly training: TrainingDefaults;
  build(): Model;
  /**
   * The same architecture with other hidden widths (neurons of hidden fully connected
   * layers, channels of convolutions), in the order of `hiddenWidths`; absent where a model
   * has no such family (small_dense then says so).
   */
  withWidths?(widths: readonly number[]): Model;
  /** The widths `build()` uses, in the order `withWidths` takes them. */
  readonly hiddenWidths?: readonly number[];
  /** For a model that takes images (channels, height, width): the shape `build()` takes. Absent: flat samples. */
  readonly input?: readonly number[];
  /** The same model for images of another shape (getModel(name, dataset) uses it). */
  forInput?(input: readonly number[]): ModelSpec;
  /** The paper's per-round pruning rate of each prunable weight ('fc1.weight' -> 0.2). */
  pruningRates(model: Model): Map<string, number>;
  /** The pruning strategy a lottery of this model uses unless told otherwise. */
  readonly pruning?: PruningDefaults;
  /**
   * What --rate sets: the fully connected layers' rate, convolutions keeping the model's
   * ('fc', the default: the paper's conv nets prune them at their own rates), or every
   * layer's ('all': one rate for the whole network, as open_lth's pruning fraction);
   * the output layer at half either way.
   */
  readonly rateScope?: 'fc' | 'all';
}

/**
 * Rates by layer kind: `convRate` for convolution weights, `fcRate` for fully connected
 * ones, with the paper's convention that the output layer is pruned at half the fully
 * connected rate.
 */
export function ratesByKind(convRate: number, fcRate: number): (model: Model) => Map<string, number> {
  return (model) => new Map(model.prunableLayers().map((l) => [l.name, l.output ? fcRate / 2 : l.kind === 'conv2d' ? convRate : fcRate]));
}
