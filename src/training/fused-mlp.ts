import { getBackend } from '../backend/index.js';
import type { SparseLayer, SparseMlpLayer } from '../backend/backend.js';
import { LthError } from '../core/errors.js';
import type { Dataset } from '../data/dataset.js';
import { chooseSparse, sparseMode } from '../tensor/sparse.js';
import { isGradEnabled, type Tensor } from '../tensor/tensor.js';
import { Linear } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import type { Optimizer } from '../nn/optim.js';

/**
 * The training step and the evaluation of an MLP whose layers all run sparse, each as one
 * backend call (Backend.sparseMlpStep, sparseMlpEval): no graph and no per-layer calls,
 * the minibatch gathered straight into the kernels' layout, each core working on the
 * inputs it gathered, and the optimiser's update applied in the same call. They give the
 * graph's numbers up to float summation order (tested), so they are chosen silently.
 */

export type FusedMode = 'auto' | 'off';

/** LTH_FUSED=auto|off (default auto), read at every call so tests and benchmarks can compare. */
export function fusedMode(): FusedMode {
  const v = process.env.LTH_FUSED;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'off') return v;
  throw new LthError(`LTH_FUSED must be 'auto' or 'off', got '${v}'`);
}

/**
 * Forward, mean softmax cross-entropy and backward on the minibatch of samples
 * order[from .. from + count) of `data`, for a model that is a chain of Linear layers each
 * computed sparsely (tensor/sparse.ts chooses per layer). Adds the gradients to each
 * weight's packed sparse gradient and each bias's .grad, as the graph would, and returns
 * the loss; given an `optimizer` with handOff, also applies its update (when the loss is
 * finite) in the same call, and its step() must not be called for this step.
 *
 * With `losses`, runs losses.length such steps in the one call, step s on the batch
 * order[from + s·count ..) (each with its update; without an optimizer the gradients add
 * up), writes each loss there, stops after a loss that is not finite and returns the last
 * loss run. An optimizer without handOff takes one step at a time.
 *
 * Returns null, having done nothing, for any other model or data (the caller then runs
 * the graph), and under LTH_FUSED=off.
 */
export function fusedMlpStep(
  model: Model, data: Dataset, order: Int32Array, from: number, count: number, optimizer?: Optimizer, losses?: Float64Array,
): number | null {
  if (losses && losses.length > 1 && optimizer && !optimizer.handOff) {
    throw new LthError('fusedMlpStep: an optimizer without handOff takes one step at a time (no losses array)');
  }
  const linears = isGradEnabled() ? sparseChain(model, data, true) : null;
  if (!linears) return null;
  const params: Tensor[] = [];  // a loop, not flatMap: V8's flatMap is slow, and this runs every step
  for (const l of linears) params.push(l.weight, l.bias);
  const handOff = optimizer?.handOff?.(params);
  const layers: SparseMlpLayer[] = linears.map((l, i) => {
    const sparse = l.weight.sparse!;
    return {
      pattern: sparse.pattern, vals: sparse.values(handOff !== undefined), bias: l.bias.data,
      gvals: sparse.grad, gbias: l.bias.ensureGrad(), relu: l.activation === 'relu',
      state: handOff && { weight: handOff.state[2 * i], bias: handOff.state[2 * i + 1] },
    };
  });
  const loss = getBackend().sparseMlpStep(data.images, data.labels, order, from, count, layers, handOff?.rule ?? null, losses);
  if (handOff) {
    // An update for every step run but one whose loss is not finite (the last one run).
    const run = losses ? runLength(losses) : 1;
    handOff.applied(Number.isFinite(loss) ? run : run - 1);
  }
  return loss;
}

/** Steps a losses array records: up to and including the first loss that is not finite. */
export function runLength(losses: Float64Array): number {
  for (let s = 0; s < losses.length; s++) if (!Number.isFinite(losses[s])) return s + 1;
  return losses.length;
}

/**
 * The mean loss and the accuracy of `model` over all of `data` in one backend call
 * (Backend.sparseMlpEval), for the models fusedMlpStep takes; null for any other (the
 * caller then evaluates through the graph) and under LTH_FUSED=off.
 */
export function fusedMlpEvaluate(model: Model, data: Dataset): { loss: number; accuracy: number } | null {
  const linears = data.length > 0 ? sparseChain(model, data, false) : null;
  if (!linears) return null;
  const layers: SparseLayer[] = linears.map((l) => ({
    pattern: l.weight.sparse!.pattern, vals: l.weight.sparse!.values(false), bias: l.bias.data, relu: l.activation === 'relu',
  }));
  const { loss, correct } = getBackend().sparseMlpEval(data.images, data.labels, layers);
  return { loss: loss / data.length, accuracy: correct / data.length };
}

/** Whether training `model` on `data` takes the fused sparse step (fusedMlpStep). */
export function fusedMlpTrains(model: Model, data: Dataset): boolean {
  return isGradEnabled() && sparseChain(model, data, true) !== null;
}

/**
 * The model's layers when it is a chain of Linear layers over `data`'s flat samples, each
 * computed sparsely (and, for training, with trainable parameters); else null.
 */
function sparseChain(model: Model, data: Dataset, training: boolean): Linear[] | null {
  if (fusedMode() === 'off' || data.sampleShape.length !== 1) return null;
  const mode = sparseMode();  // once per step, not per layer: process.env is slow to read
  let features = data.sampleSize;
  const linears: Linear[] = [];
  for (const [, layer] of model.layers) {
    if (!(layer instanceof Linear) || layer.inFeatures !== features || layer.bias.mask) return null;
    if (training && !(layer.weight.requiresGrad && layer.bias.requiresGrad)) return null;
    if (!chooseSparse(layer.weight, mode)) return null;
    linears.push(layer);
    features = layer.outFeatures;
  }
  return linears.length ? linears : null;
}
