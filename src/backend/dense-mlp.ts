import type { Backend } from './backend.js';
import { referenceBackend } from './reference.js';
import type { UpdateRule } from './sparse-mlp.js';

/**
 * The kernels of the dense-MLP program (src/program/dense-mlp.ts): whole training steps of
 * a chain of dense fully connected layers in one call, and the evaluation of a data set in
 * one call. Like SparseMlpKernels, a program's engine: the chain is prepared once, then
 * stepped. Each step runs the Backend kernels the graph program's Linear layers run
 * (matmul, biasAct, softmaxXent, reluBackward, sumRows, adam / sgd), in the same order on
 * the same shapes, so on a backend it gives that backend's graph numbers exactly. The
 * reference implementation below is that composition, on the reference backend.
 */
export interface DenseMlpKernels {
  /**
   * Checks a chain of layers once (each takes the previous one's outputs; sizes; no shared
   * memory) and keeps its arrays: they are the caller's, read and written in place by every
   * later call.
   */
  prepare(layers: readonly DenseMlpLayer[]): PreparedDenseMlp;

  /**
   * losses.length training steps on consecutive minibatches: step s on the samples
   * indices[from + s·n .. from + (s+1)·n) of src [samples, inputs] with labels from
   * srcLabels. Each step runs every layer, the softmax cross-entropy of the last layer's
   * outputs and, when its loss is finite, the backward pass adding the gradient of the mean
   * loss to each layer's gweight and gbias, then with an `update` the update of weight and
   * bias (as Backend.adam / sgd, zeroing the gradients; Adam's step count advances by one a
   * step). Writes each step's mean loss (rounded to float, as the graph's loss tensor) and
   * stops after a step whose loss is not finite. Every index and label is checked before
   * the first step. Returns the number of steps run.
   *
   * The native step may gather the next batch ahead and use it when the next step (in this
   * call or the next) asks for the same rows of the same src: src must not change in place
   * between calls (indices may; the rows are compared).
   */
  step(
    chain: PreparedDenseMlp, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    update: UpdateRule | null, losses: Float64Array,
  ): number;

  /**
   * The summed softmax cross-entropy and the number of correct predictions (first maximum
   * logit = label) of every sample of src through the chain, in chunks of `chunk` samples
   * whose sums are added in order.
   */
  evaluate(chain: PreparedDenseMlp, src: Float32Array, srcLabels: Int32Array, chunk: number): { loss: number; correct: number };
}

/** A chain checked by one implementation's `prepare`; only that implementation takes it. */
export interface PreparedDenseMlp {
  readonly layers: readonly DenseMlpLayer[];
}

/** One dense layer: y = act(x·Wᵀ + b), W [outFeatures, inFeatures] row-major, with its gradients and optimiser state. */
export interface DenseMlpLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Float32Array;
  readonly bias: Float32Array | null;
  readonly relu: boolean;
  /** The weight gradient: a step adds to it. */
  readonly gweight: Float32Array;
  /** The bias gradient, or null (not wanted). */
  readonly gbias: Float32Array | null;
  /** The optimiser state for updates: [m, v] (Adam) or [momentum buffer] (SGD), of the weight and of the bias. */
  readonly state?: { readonly weight: readonly Float32Array[]; readonly bias: readonly Float32Array[] };
  /** The weight's mask [outFeatures, inFeatures] (1 keep, 0 pruned), given to the update as Backend.adam / sgd take it; absent or null: dense. */
  readonly mask?: Float32Array | null;
}

/** The Backend's kernels composed, as the graph program runs them; `be` the backend (the reference one by default). */
export function composedDenseMlp(be: Backend = referenceBackend): DenseMlpKernels {
  return {
    prepare(layers) {
      checkChain(layers);
      return { layers };
    },

    step(chain, src, srcLabels, indices, from, n, update, losses) {
      const { layers } = chain;
      const steps = losses.length, inputs = layers[0].inFeatures, classes = layers[layers.length - 1].outFeatures;
      if (steps < 1) throw new RangeError('denseMlpStep: losses must hold at least one step');
      const rows = src.length / inputs;
      if (from + steps * n > indices.length) throw new RangeError(`denseMlpStep: indices has ${indices.length} elements, needs from+n*steps = ${from + steps * n}`);
      for (let i = from; i < from + steps * n; i++) {
        if (!(indices[i] >= 0 && indices[i] < rows)) throw new RangeError(`denseMlpStep: indices[${i}] = ${indices[i]} is outside [0, ${rows})`);
        const label = srcLabels[indices[i]];
        if (!(label >= 0 && label < classes)) throw new RangeError(`denseMlpStep: srcLabels[${indices[i]}] = ${label} is outside [0, ${classes})`);
      }
      const x = new Float32Array(n * inputs), labels = new Int32Array(n);
      const acts = layers.map((l) => new Float32Array(n * l.outFeatures));
      const grads = layers.map((l) => new Float32Array(n * l.outFeatures));
      for (let s = 0; s < steps; s++) {
        const at = from + s * n;
        be.gatherRows(src, inputs, indices, at, n, x);
        for (let i = 0; i < n; i++) labels[i] = srcLabels[indices[at + i]];
        forward(be, layers, x, acts, n);
        const loss = (losses[s] = Math.fround(be.softmaxXent(acts[acts.length - 1], labels, n, classes, grads[grads.length - 1], 1 / n) / n));
        if (!Number.isFinite(loss)) return s + 1;
        for (let i = layers.length - 1; i >= 0; i--) {
          const l = layers[i], g = grads[i], input = i > 0 ? acts[i - 1] : x;
          if (l.relu) be.reluBackward(g, acts[i], g, g.length);
          be.matmul(g, input, l.gweight, l.outFeatures, n, l.inFeatures, true, false, true);
          if (l.gbias) be.sumRows(g, l.gbias, n, l.outFeatures, true);
          if (i === 0) break;
          grads[i - 1].fill(0);
          be.matmul(g, l.weight, grads[i - 1], n, l.outFeatures, l.inFeatures, false, false, true);
        }
        if (!update) continue;
        for (const l of layers) {
          if (!l.state) throw new TypeError('denseMlpStep: an update needs every layer\'s optimiser state');
          const apply = (p: Float32Array, grad: Float32Array, [s0, s1]: readonly Float32Array[], mask: Float32Array | null) => {
            if (update.kind === 'adam') be.adam(p, grad, s0, s1, mask, p.length, update.lr, update.beta1, update.beta2, update.eps, update.step + s);
            else be.sgd(p, grad, s0, mask, p.length, update.lr, update.momentum, update.weightDecay);
          };
          apply(l.weight, l.gweight, l.state.weight, l.mask ?? null);
          if (l.bias && l.gbias) apply(l.bias, l.gbias, l.state.bias, null);
        }
      }
      return steps;
    },

    evaluate(chain, src, srcLabels, chunk) {
      const { layers } = chain;
      const inputs = layers[0].inFeatures, classes = layers[layers.length - 1].outFeatures;
      const samples = src.length / inputs;
      if (!Number.isInteger(samples)) throw new RangeError(`denseMlpEval: src has ${src.length} elements, not a whole number of samples of ${inputs}`);
      for (let i = 0; i < samples; i++) {
        if (!(srcLabels[i] >= 0 && srcLabels[i] < classes)) throw new RangeError(`denseMlpEval: srcLabels[${i}] = ${srcLabels[i]} is outside [0, ${classes})`);
      }
      let loss = 0, correct = 0;
      for (let c0 = 0; c0 < samples; c0 += chunk) {
        const m = Math.min(chunk, samples - c0);
        const acts = layers.map((l) => new Float32Array(m * l.outFeatures));
        forward(be, layers, src.subarray(c0 * inputs, (c0 + m) * inputs), acts, m);
        const labels = srcLabels.subarray(c0, c0 + m);
        loss += be.softmaxXent(acts[acts.length - 1], labels, m, classes, null, 0);
        correct += be.countCorrect(acts[acts.length - 1], labels, m, classes);
      }
      return { loss, correct };
    },
  };
}

export const referenceDenseMlp: DenseMlpKernels = composedDenseMlp();

/** acts[i] = layer i's outputs for the m samples x, as linear() computes them. */
function forward(be: Backend, layers: readonly DenseMlpLayer[], x: Float32Array, acts: Float32Array[], m: number): void {
  layers.forEach((l, i) => {
    be.matmul(i > 0 ? acts[i - 1] : x, l.weight, acts[i], m, l.inFeatures, l.outFeatures, false, true, false);
    if (l.bias || l.relu) be.biasAct(acts[i], l.bias ?? new Float32Array(l.outFeatures), acts[i], m, l.outFeatures, l.relu);
  });
}

/** That each layer takes the previous layer's outputs and its arrays have their sizes (RangeError otherwise). */
function checkChain(layers: readonly DenseMlpLayer[]): void {
  if (layers.length < 2) throw new RangeError('denseMlpPrepare: expected at least two layers');
  layers.forEach((l, i) => {
    if (i > 0 && l.inFeatures !== layers[i - 1].outFeatures) {
      throw new RangeError(`denseMlpPrepare: layer ${i} takes ${l.inFeatures} inputs but layer ${i - 1} gives ${layers[i - 1].outFeatures}`);
    }
    const size = l.inFeatures * l.outFeatures;
    if (l.weight.length < size || l.gweight.length < size) throw new RangeError(`denseMlpPrepare: layer ${i} weight and gweight need in*out = ${size} elements`);
    if (l.mask && l.mask.length < size) throw new RangeError(`denseMlpPrepare: layer ${i} mask needs in*out = ${size} elements`);
  });
}
