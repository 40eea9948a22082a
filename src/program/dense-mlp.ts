import type { DenseMlpKernels, DenseMlpLayer, PreparedDenseMlp } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import type { Dataset } from '../data/dataset.js';
import { maskDensities } from '../nn/flops.js';
import { Linear } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import type { StateDict } from '../nn/module.js';
import { checkOptimizer, checkOptimizerState, stateArrays, stateNames, type OptimizerSettings, type OptimizerState } from '../nn/optim.js';
import { useSparse } from '../tensor/sparse.js';
import { fusedSteps } from './fused.js';
import { flatEvalBatch } from './graph.js';
import { applyMasks } from './masks.js';
import type { CompileOptions, EvalResult, Minibatches, Program } from './program.js';

interface Layer extends DenseMlpLayer {
  readonly linear: Linear;
  /** The layer's parameter names ('fc1.weight', 'fc1.bias'). */
  readonly names: { readonly weight: string; readonly bias: string };
  readonly weight: Float32Array;
  readonly bias: Float32Array;
}

/**
 * The program of an MLP (a chain of Linear layers over flat samples) whose layers run dense:
 * a run of training steps is one call of the backend's dense-MLP kernels
 * (DenseMlpKernels.step), the minibatch gathered in the same call and the optimiser's update
 * applied there, and an evaluation one call too. Those kernels are the graph program's own,
 * in its order, so it gives the graph program's numbers bit for bit (tested); what it saves
 * is the graph's per-step work. Masked weights (IMP's levels above the sparse kernels'
 * density threshold) are zero where pruned and stay so: the update takes each weight's mask,
 * as the graph's optimiser does. The compact program trains its smaller network on it.
 */
export class DenseMlpProgram implements Program {
  readonly kind = 'dense_mlp';
  readonly parallelEval = true;
  readonly sparseWeights: ReadonlySet<string> = new Set();
  private readonly layers: Layer[];
  private readonly chain: PreparedDenseMlp;
  private readonly kernels: DenseMlpKernels;
  private readonly optimizer: OptimizerSettings | null;
  private readonly evalBatch: number;
  private readonly masks: Map<string, Float32Array>;
  /** Updates made so far (Adam's step count). */
  private updates = 0;

  /**
   * The program for `model`, or null when it is not a chain of two or more Linear layers,
   * when a masked layer is sparse enough for the sparse kernels (the graph program runs it
   * on them; layers too small to matter aside), or when the fused mode is off. Tried after
   * the sparse-MLP program, which takes chains that run sparse throughout.
   */
  static compile(model: Model, opts: CompileOptions): DenseMlpProgram | null {
    const { settings } = opts.context;
    if (settings.fused === 'off') return null;
    const children = model.namedChildren();
    if (children.length < 2) return null;
    const densities = maskDensities(opts.masks);
    let features = -1;
    for (const [path, c] of children) {
      if (!(c instanceof Linear) || (features >= 0 && c.inFeatures !== features)) return null;
      features = c.outFeatures;
      const density = densities.get(`${path}.weight`);
      if (density !== undefined && useSparse(density, settings.sparse)) return null;
    }
    return new DenseMlpProgram(model, opts);
  }

  private constructor(private readonly model: Model, opts: CompileOptions) {
    this.kernels = opts.context.denseMlp;
    this.optimizer = opts.optimizer;
    if (opts.optimizer) checkOptimizer(opts.optimizer);
    this.masks = applyMasks(model, opts.masks);
    this.layers = model.namedChildren().map(([path, c]) => {
      const linear = c as Linear;
      const size = linear.weight.size, out = linear.outFeatures;
      return {
        linear, names: { weight: `${path}.weight`, bias: `${path}.bias` }, mask: this.masks.get(`${path}.weight`) ?? null,
        inFeatures: linear.inFeatures, outFeatures: out, relu: linear.activation === 'relu',
        weight: Float32Array.from(linear.weight.data), bias: Float32Array.from(linear.bias.data),
        gweight: new Float32Array(size), gbias: new Float32Array(out),
        state: opts.optimizer ? { weight: stateArrays(opts.optimizer, size), bias: stateArrays(opts.optimizer, out) } : undefined,
      };
    });
    this.chain = this.kernels.prepare(this.layers);
    this.evalBatch = flatEvalBatch(this.layers.reduce((a, l) => a + l.outFeatures, 0));
  }

  step(batches: Minibatches, losses: Float64Array, lr?: number): number {
    const { data, order, from, batchSize } = batches;
    const { ran, updates } = fusedSteps(this.optimizer, this.updates, losses, lr, (rule) => {
      this.checkData(data);
      return this.kernels.step(this.chain, data.images, data.labels, order, from, batchSize, rule, losses);
    });
    this.updates = updates;
    return ran;
  }

  evaluate(data: Dataset): EvalResult {
    if (data.length === 0) return { loss: NaN, accuracy: NaN };
    this.checkData(data);
    const { loss, correct } = this.kernels.evaluate(this.chain, data.images, data.labels, this.evalBatch);
    return { loss: loss / data.length, accuracy: correct / data.length };
  }

  state(): StateDict {
    const out = this.model.state();
    for (const l of this.layers) {
      out.get(l.names.weight)!.set(l.weight);
      out.get(l.names.bias)!.set(l.bias);
    }
    return out;
  }

  load(state: StateDict): void {
    this.model.loadState(state);
    applyMasks(this.model, this.masks);
    for (const l of this.layers) {
      l.weight.set(l.linear.weight.data);
      l.bias.set(l.linear.bias.data);
    }
  }

  writeBack(): void {
    for (const l of this.layers) {
      l.linear.weight.data.set(l.weight);
      l.linear.bias.data.set(l.bias);
    }
  }

  optimizerState(): OptimizerState {
    const names = stateNames(this.trainer());
    const arrays = new Map<string, Float32Array>();
    for (const l of this.layers) {
      names.forEach((k, j) => arrays.set(`${l.names.weight}.${k}`, Float32Array.from(l.state!.weight[j])));
      names.forEach((k, j) => arrays.set(`${l.names.bias}.${k}`, Float32Array.from(l.state!.bias[j])));
    }
    return { steps: this.updates, arrays };
  }

  loadOptimizerState(state: OptimizerState): void {
    const names = stateNames(this.trainer());
    checkOptimizerState(state, new Map(this.layers.flatMap((l) => names.flatMap((k) => [
      [`${l.names.weight}.${k}`, l.linear.weight.size], [`${l.names.bias}.${k}`, l.outFeatures],
    ] as Array<[string, number]>))));
    for (const l of this.layers) {
      names.forEach((k, j) => {
        l.state!.weight[j].set(state.arrays.get(`${l.names.weight}.${k}`)!);
        l.state!.bias[j].set(state.arrays.get(`${l.names.bias}.${k}`)!);
      });
    }
    this.updates = state.steps;
  }

  private trainer(): OptimizerSettings {
    check(this.optimizer !== null, 'program: compiled for evaluation only, it has no optimiser state');
    return this.optimizer;
  }

  private checkData(data: Dataset): void {
    const inputs = this.layers[0].inFeatures;
    if (data.sampleShape.length !== 1 || data.sampleSize !== inputs || data.labelSize !== 1) {
      throw new LthError(`${this.model.name}: takes samples of ${inputs} features with one label each, the data set's are [${data.sampleShape.join(', ')}] with ${data.labelSize} labels`);
    }
  }
}
