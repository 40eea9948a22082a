import type { RunContext } from '../backend/index.js';
import type { Dataset } from '../data/dataset.js';
import type { StateDict } from '../nn/module.js';
import type { OptimizerSettings, OptimizerState } from '../nn/optim.js';

/**
 * A stage's model and masks compiled into whatever runs them fastest: the trainer only
 * calls step() and evaluate() and never knows which program it has. The program owns the
 * live weights (packed per nonzero where it computes sparsely; it may train the model's own
 * tensors where it does not) and the optimiser state: state() reads the live weights, and
 * the model holds them only after writeBack(); optimizerState() and loadOptimizerState()
 * move the optimiser's state out and in (checkpoints).
 */
export interface Program {
  /** Which program this is, recorded with each stage: 'graph', 'sparse_mlp', 'dense_mlp' or 'compact'. */
  readonly kind: ProgramKind;
  /**
   * Whether evaluating in a second thread pays while this program trains: false when its
   * step already keeps every core busy.
   */
  readonly parallelEval: boolean;
  /** The masked weights it computes at their nonzeros only (on sparse kernels): what its steps cost (nn/flops.ts). */
  readonly sparseWeights: ReadonlySet<string>;
  /**
   * losses.length optimiser steps on consecutive minibatches: step s on the samples
   * order[from + s·B .. from + (s+1)·B) of `data` (B = batchSize), its mean loss in
   * losses[s]. Stops after a step whose loss is not finite (that step makes no update) and
   * returns the number of steps run. Every step updates at learning rate `lr` (a schedule's),
   * by default the optimiser settings' own.
   */
  step(batches: Minibatches, losses: Float64Array, lr?: number): number;
  /** Mean softmax cross-entropy and accuracy over all of `data`'s labels (one per example, or one per position), in evaluation mode. */
  evaluate(data: Dataset): EvalResult;
  /** A copy of the live parameters and buffers, as a state dict of the model (pruned weights zero). */
  state(): StateDict;
  /** Replaces the live parameters and buffers (the masks still apply; the model's tensors may change too); the optimiser state is kept. */
  load(state: StateDict): void;
  /** Writes the live parameters and buffers into the model's tensors. */
  writeBack(): void;
  /**
   * A copy of the optimiser's state: the updates made so far (Adam's step count) and every
   * state array at its parameter's full size (pruned entries zero), by
   * `<parameter>.<exp_avg|exp_avg_sq|momentum_buffer>`. With state(), all a run of steps
   * carries to the next besides the data order (a function of the seed and the epoch) and
   * the model's random streams (Module.randomState): what a checkpoint keeps. The same
   * names and values on every program.
   */
  optimizerState(): OptimizerState;
  /**
   * Replaces the optimiser's state with one optimizerState() gave (this program's, or another
   * program's of the same model, masks and optimiser): the next step continues as the
   * program that exported it would have. Every array must be there with its size.
   */
  loadOptimizerState(state: OptimizerState): void;
  /**
   * Trains with other masks from now on (same names as compiled), in place: weights and
   * optimiser state outside the new masks are zero, and so are the `grown` entries (new
   * connections) whatever they were. `dropped` names, for a layer that `grown` names too,
   * the entries of its previous mask that the new one clears: its new mask is then the
   * previous one without them and with the grown ones, which the program need not read. A
   * program without it is compiled again instead (train()'s generic path, which gives the
   * same numbers).
   */
  setMasks?(masks: ReadonlyMap<string, Float32Array>, grown?: ReadonlyMap<string, Int32Array>, dropped?: ReadonlyMap<string, Int32Array>): void;
  /**
   * The gradient of the mean loss of the first minibatch of `batch` at the live weights,
   * at every entry of the named weights as if they were dense (RigL's growth criterion);
   * changes no weight, gradient or optimiser state. The arrays are the program's, valid
   * until its next call. A program without it leaves this to train() (a dense copy of the
   * model, the same numbers up to float summation order).
   */
  denseGradients?(batch: Minibatches, names: readonly string[]): Map<string, Float32Array>;
  /**
   * The flat indices of the `count` kept weights of `name` of smallest magnitude, ties to
   * the lower index, into out[0..count) in increasing order (a program without it: train()
   * selects them from state()).
   */
  smallestWeights?(name: string, count: number, out: Int32Array): void;
}

export type ProgramKind = 'graph' | 'sparse_mlp' | 'dense_mlp' | 'compact';

/** Consecutive minibatches of a data set by reference: samples order[from ..] in batches of batchSize. */
export interface Minibatches {
  readonly data: Dataset;
  readonly order: Int32Array;
  readonly from: number;
  readonly batchSize: number;
}

export interface EvalResult {
  readonly loss: number;
  readonly accuracy: number;
}

/** What a program is compiled from besides the model. */
export interface CompileOptions {
  /** Masks of prunable weights (1 keep, 0 pruned); weights not named are dense. */
  readonly masks?: ReadonlyMap<string, Float32Array>;
  /** The optimiser the program trains with; null for a program that only evaluates. */
  readonly optimizer: OptimizerSettings | null;
  readonly context: RunContext;
  /** The shape of one input sample, when known: it sizes each convolution's output for the choice of its kernels (sparseConvThreshold). */
  readonly sampleShape?: readonly number[];
}
