import type { PreparedMlp, SparseMlpKernels, SparseMlpLayer, SparsePattern } from '../backend/index.js';
import { LthError, check } from '../core/errors.js';
import type { Dataset } from '../data/dataset.js';
import { Linear } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import type { StateDict } from '../nn/module.js';
import { checkOptimizer, checkOptimizerState, stateArrays, stateNames, type OptimizerSettings, type OptimizerState } from '../nn/optim.js';
import { maskPattern, packValues, unpackValues, useSparse } from '../tensor/sparse.js';
import { applyMasks } from './masks.js';
import { fusedSteps } from './fused.js';
import type { CompileOptions, EvalResult, Minibatches, Program } from './program.js';

interface Layer extends SparseMlpLayer {
  readonly name: string;
  readonly linear: Linear;
  pattern: SparsePattern;
  vals: Float32Array;
  gvals: Float32Array;
  state?: { readonly weight: Float32Array[]; readonly bias: readonly Float32Array[] };
  readonly bias: Float32Array;
  /** A copy of a packed array while setMasks reorders it in place. */
  spare?: Float32Array;
  /** The mask its pattern was built from (setMasks skips a layer given the same array). */
  mask: Float32Array;
  /** Its dense gradient (denseGradients), [rows, cols]. */
  dense?: Float32Array;
}

/**
 * The program of an MLP whose layers all run on sparse kernels (a chain of masked Linear
 * layers over flat samples): a run of training steps is one call of the backend's
 * sparse-MLP kernels (SparseMlpKernels.step), with no graph and no per-layer calls; the
 * minibatch is gathered straight from the data set into the kernels' layout and the
 * optimiser's update is applied in the same call. It gives the graph program's numbers up
 * to float summation order (tested), so it is chosen silently where it applies.
 */
export class SparseMlpProgram implements Program {
  readonly kind = 'sparse_mlp';
  /** The step splits its first layer over every thread: a second thread's evaluation would only take cores from it. */
  readonly parallelEval = false;
  readonly sparseWeights: ReadonlySet<string>;
  private readonly layers: Layer[];
  private readonly threads: number;
  private readonly backend: CompileOptions['context']['backend'];
  private chain: PreparedMlp;
  private readonly kernels: SparseMlpKernels;
  private readonly optimizer: OptimizerSettings | null;
  /** Updates made so far (Adam's step count). */
  private updates = 0;

  /** The program for `model`, or null when it is not a chain of Linear layers that all run sparse. */
  static compile(model: Model, opts: CompileOptions): SparseMlpProgram | null {
    const { settings } = opts.context;
    if (settings.fused === 'off') return null;
    const children = model.namedChildren();
    if (children.length === 0) return null;
    let features = -1;
    for (const [path, c] of children) {
      if (!(c instanceof Linear) || (features >= 0 && c.inFeatures !== features)) return null;
      const mask = opts.masks?.get(`${path}.weight`);
      if (!mask) return null;
      let kept = 0;
      for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) kept++;
      if (!useSparse(kept / mask.length, settings.sparse, mask.length)) return null;
      features = c.outFeatures;
    }
    return new SparseMlpProgram(model, opts);
  }

  private constructor(private readonly model: Model, opts: CompileOptions) {
    const masks = applyMasks(model, opts.masks);
    this.kernels = opts.context.sparseMlp;
    this.optimizer = opts.optimizer;
    if (opts.optimizer) checkOptimizer(opts.optimizer);
    this.layers = model.namedChildren().map(([path, c]) => {
      const linear = c as Linear, name = `${path}.weight`;
      const { pattern } = maskPattern(masks.get(name)!, linear.outFeatures, linear.inFeatures, opts.context.backend);
      const state = opts.optimizer ? { weight: stateArrays(opts.optimizer, pattern.nnz), bias: stateArrays(opts.optimizer, linear.outFeatures) } : undefined;
      return {
        name, linear, pattern, relu: linear.activation === 'relu', mask: masks.get(name)!,
        vals: packValues(pattern, linear.weight.data), bias: Float32Array.from(linear.bias.data),
        gvals: new Float32Array(pattern.nnz), gbias: new Float32Array(linear.outFeatures), state,
      };
    });
    this.threads = opts.context.settings.threads;
    this.backend = opts.context.backend;
    this.chain = this.kernels.prepare(this.layers, this.threads);
    this.sparseWeights = new Set(this.layers.map((l) => l.name));
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
    const { loss, correct } = this.kernels.evaluate(this.chain, data.images, data.labels);
    return { loss: loss / data.length, accuracy: correct / data.length };
  }

  state(): StateDict {
    // The model's copies are stale where the program trains: the layers' weights and biases
    // come from the program's arrays (a weight unpacked into zeros, not copied first).
    const out: StateDict = new Map(this.model.namedTensors().map(([n, t]) => [n, this.sparseWeights.has(n) ? new Float32Array(t.size) : Float32Array.from(t.data)]));
    for (const l of this.layers) {
      unpackValues(l.pattern, l.vals, out.get(l.name)!);
      out.get(biasName(l))!.set(l.bias);
    }
    return out;
  }

  load(state: StateDict): void {
    this.model.loadState(state);
    for (const l of this.layers) {
      packValues(l.pattern, l.linear.weight.data, l.vals);
      l.bias.set(l.linear.bias.data);
    }
  }

  writeBack(): void {
    for (const l of this.layers) {
      l.linear.weight.data.fill(0);
      unpackValues(l.pattern, l.vals, l.linear.weight.data);
      l.linear.bias.data.set(l.bias);
    }
  }

  optimizerState(): OptimizerState {
    const settings = this.trainer();
    const arrays = new Map<string, Float32Array>();
    const names = stateNames(settings);
    for (const l of this.layers) {
      names.forEach((k, j) => arrays.set(`${l.name}.${k}`, unpackValues(l.pattern, l.state!.weight[j], new Float32Array(l.linear.weight.size))));
      names.forEach((k, j) => arrays.set(`${biasName(l)}.${k}`, Float32Array.from(l.state!.bias[j])));
    }
    return { steps: this.updates, arrays };
  }

  loadOptimizerState(state: OptimizerState): void {
    const names = stateNames(this.trainer());
    checkOptimizerState(state, new Map(this.layers.flatMap((l) => names.flatMap((k) => [
      [`${l.name}.${k}`, l.linear.weight.size], [`${biasName(l)}.${k}`, l.linear.outFeatures],
    ] as Array<[string, number]>))));
    for (const l of this.layers) {
      names.forEach((k, j) => {
        packValues(l.pattern, state.arrays.get(`${l.name}.${k}`)!, l.state!.weight[j]);
        l.state!.bias[j].set(state.arrays.get(`${biasName(l)}.${k}`)!);
      });
    }
    this.updates = state.steps;
  }

  /**
   * New patterns for the layers whose masks changed. Each packed array (weights, optimiser
   * state) is carried to the new packed order through one map from new positions to old
   * ones (-1: a new or grown connection, which starts at zero; Backend.sparsePatternMoved,
   * which makes the new pattern from the old one and the grown entries where it can;
   * Backend.sparsePatternChanged, without reading the mask, where the dropped entries are
   * given too, and moving the arrays in place where they are as many as the grown ones);
   * then the chain is prepared again.
   */
  setMasks(masks: ReadonlyMap<string, Float32Array>, grown?: ReadonlyMap<string, Int32Array>, dropped?: ReadonlyMap<string, Int32Array>): void {
    for (const l of this.layers) {
      const mask = masks.get(l.name);
      check(mask !== undefined && mask.length === l.linear.weight.size, () => `program: setMasks needs a mask of ${l.linear.weight.size} values for ${l.name}`);
    }
    // The old patterns give their memory to the new ones: nothing uses them after this
    // (the chain that holds them is prepared again below; `flat` is the program's copy).
    for (const l of this.layers) {
      const mask = masks.get(l.name)!;
      const fresh = grown?.get(l.name);
      if (mask === l.mask && !fresh) continue;
      const cleared = fresh && dropped?.get(l.name);
      if (cleared && cleared.length === fresh.length) {
        // The same count: the backend moves the packed arrays in place with the pattern.
        l.pattern = this.backend.sparsePatternChanged(l.pattern, cleared, fresh, l.vals, ...(l.state?.weight ?? [])).pattern;
        l.mask = mask;
        continue;
      }
      const { pattern, from } = cleared ? this.backend.sparsePatternChanged(l.pattern, cleared, fresh) : this.backend.sparsePatternMoved(l.pattern, mask, fresh ?? null);
      const remap = (packed: Float32Array): Float32Array => {
        // The same count of nonzeros: in place, from a copy of the old values.
        if (pattern.nnz !== packed.length) return moved(packed, from, new Float32Array(pattern.nnz));
        l.spare = copyInto(l.spare, packed);
        return moved(l.spare, from, packed);
      };
      l.vals = remap(l.vals);
      if (l.state) l.state = { weight: l.state.weight.map(remap), bias: l.state.bias };
      if (pattern.nnz !== l.pattern.nnz) l.gvals = new Float32Array(pattern.nnz);
      l.pattern = pattern;
      l.mask = mask;
    }
    this.chain = this.kernels.prepare(this.layers, this.threads);
  }

  denseGradients(batch: Minibatches, names: readonly string[]): Map<string, Float32Array> {
    const { data, order, from, batchSize } = batch;
    this.checkData(data);
    const wanted = new Set(names);
    for (const n of names) this.layer(n);
    const outs = this.layers.map((l) => (wanted.has(l.name) ? (l.dense ??= new Float32Array(l.linear.weight.size)) : null));
    this.kernels.denseGrad(this.chain, data.images, data.labels, order, from, batchSize, outs);
    return new Map(names.map((n) => [n, this.layer(n).dense!]));
  }

  smallestWeights(name: string, count: number, out: Int32Array): void {
    // Among the packed weights, at their flat indices.
    const l = this.layer(name);
    this.backend.selectByMagnitudeAt(l.vals, l.pattern.flat, count, false, out);
  }

  /** The layer of weight `name`. */
  private layer(name: string): Layer {
    const l = this.layers.find((x) => x.name === name);
    if (!l) throw new LthError(`program: ${this.model.name} has no sparse weight ${name}`);
    return l;
  }

  private trainer(): OptimizerSettings {
    check(this.optimizer !== null, 'program: compiled for evaluation only, it has no optimiser state');
    return this.optimizer;
  }

  private checkData(data: Dataset): void {
    const inputs = this.layers[0].linear.inFeatures;
    if (data.sampleShape.length !== 1 || data.sampleSize !== inputs) {
      throw new LthError(`${this.model.name}: takes samples of ${inputs} features, the data set's are [${data.sampleShape.join(', ')}]`);
    }
  }
}

/** out[k] = src[from[k]], 0 where from[k] is -1. */
function moved(src: Float32Array, from: Int32Array, out: Float32Array): Float32Array {
  for (let k = 0; k < out.length; k++) {
    const j = from[k];
    out[k] = j >= 0 ? src[j] : 0;
  }
  return out;
}

/** `src` copied into `into` when it has the same length, else into a new array. */
function copyInto(into: Float32Array | undefined, src: Float32Array): Float32Array {
  if (!into || into.length !== src.length) return Float32Array.from(src);
  into.set(src);
  return into;
}

/** The name of a layer's bias ('fc1.bias' beside 'fc1.weight'). */
function biasName(l: Layer): string {
  return `${l.name.slice(0, -'.weight'.length)}.bias`;
}
