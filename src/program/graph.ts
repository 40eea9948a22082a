import { getBackend, type ConvPattern, type SparsePattern } from '../backend/index.js';
import { check } from '../core/errors.js';
import type { Dataset } from '../data/dataset.js';
import { Conv2d, Linear } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import { Sequential, fusedAt, type Module, type StateDict } from '../nn/module.js';
import { BasicBlock } from '../nn/residual.js';
import { Conv1d, SelfAttention, TransformerBlock } from '../nn/seq-layers.js';
import { reshape } from '../tensor/seq.js';
import { Optimizer, checkOptimizerState, stateNames, type OptimizerState, type ParamSlot } from '../nn/optim.js';
import { linear, softmaxCrossEntropy } from '../tensor/ops.js';
import { fromPanels, sparseTokenLinearThreshold, type Panels, maskPattern, packValues, sparseLinearPanels, toPanels, unpackValues, useSparse, useSparseBelow } from '../tensor/sparse.js';
import { SPARSE_CONV1D_DENSITY_THRESHOLD, convMaskPattern, sparseConv2d, sparseConvFits, sparseConvThreshold } from '../tensor/sparse-conv.js';
import { Workspace, usesWinograd } from '../tensor/conv.js';
import { weightMacs } from '../nn/flops.js';
import { BufferArena, Tensor, noGrad } from '../tensor/tensor.js';
import { applyMasks } from './masks.js';
import type { CompileOptions, EvalResult, Minibatches, Program } from './program.js';

/** The buffers (floats) an evaluation batch of flat samples may take: 32M, 128 MB. */
const EVAL_FLOATS = 32 * 1024 * 1024;

/** Samples per evaluation batch of flat samples whose pass takes `floatsPerSample` floats of buffers each: up to 1000. */
export function flatEvalBatch(floatsPerSample: number): number {
  return Math.max(1, Math.min(1000, Math.floor(EVAL_FLOATS / floatsPerSample)));
}

/** A weight the graph program computes on sparse kernels, packed. */
type SparseWeight = SparseLinear | SparseConv;

interface PackedWeight {
  readonly name: string;
  /** The model's full-size weight, which vals replaces while the program trains. */
  readonly weight: Tensor;
  /** The weight's values at the pattern's nonzeros: the live weight, trained in place of weight. */
  readonly vals: Tensor;
}

/** A Linear layer's weight, or another y = x·Wᵀ + b product's (attention's in_proj). */
interface SparseLinear extends PackedWeight {
  readonly bias: Tensor | null;
  readonly activation: 'none' | 'relu';
  readonly pattern: SparsePattern;
}

interface SparseConv extends PackedWeight {
  readonly layer: Conv2d | Conv1d;
  readonly pattern: ConvPattern;
  /** The output buffers kept from step to step (as the dense layer's own). */
  readonly workspace: Workspace;
}

/**
 * The autograd program, for any model: the model's own forward, except that inside a
 * Sequential each run of consecutive masked Linear layers that the sparse mode puts on
 * sparse kernels becomes one sparse chain (toPanels, a sparse layer each, fromPanels), its
 * weights packed per nonzero, and each masked stride-1 Conv2d that it puts on sparse
 * kernels (under 'auto', below the density threshold of its dense path and shape,
 * sparseConvThreshold) a sparse convolution, as each masked Conv1d (below
 * SPARSE_CONV1D_DENSITY_THRESHOLD) and a residual block's stride-1 convolutions; a
 * Transformer block's masked products (below sparseTokenLinearThreshold) run
 * on the sparse Linear kernels, each on panels (the feed-forward pair as one chain). The
 * optimiser trains the packed weights and the model's other parameters, with each dense
 * weight's mask.
 */
export class GraphProgram implements Program {
  readonly kind = 'graph';
  readonly parallelEval = true;
  readonly sparseWeights: ReadonlySet<string>;
  private readonly forward: (x: Tensor) => Tensor;
  private readonly sparse: SparseWeight[] = [];
  private readonly masks: Map<string, Float32Array>;
  private readonly optimizer: Optimizer | null;
  /** The optimiser's slots by parameter name, in order: size, and the packed weight's pattern where it trains one. */
  private readonly slotInfo: ReadonlyArray<{ readonly name: string; readonly size: number; readonly sparse: SparseWeight | null }>;
  // Every tensor of a step (or an evaluation batch) dies with it: the next one reuses their buffers.
  private readonly stepArena = new BufferArena();
  private readonly evalArena = new BufferArena();
  private batch: { x: Tensor; labels: Int32Array } | null = null;
  /** Floats of buffers one sample's evaluation pass takes (see evalBatchSize), once measured. */
  private evalFloatsPerSample: number | null = null;

  constructor(private readonly model: Model, opts: CompileOptions) {
    this.masks = applyMasks(model, opts.masks);
    const mode = opts.context.settings.sparse;
    const be = opts.context.backend;
    const sparseOf = new Map<Module, SparseWeight>();
    const tokenwise = new Set<Module>();
    const reachable = sequentialLayers(model, new Set(), tokenwise);
    // Each weight's MACs per sample: a convolution's output plane is its MACs over its weight's size.
    const macs = opts.sampleShape && mode === 'auto' && [...this.masks.keys()].some((n) => model.parameter(n).shape.length === 4)
      ? new Map(weightMacs(model, opts.sampleShape).map((w) => [w.name, w.macs]))
      : null;
    for (const [path, m] of model.namedModules()) {
      if (!reachable.has(m)) continue;
      const own = m instanceof SelfAttention ? 'in_proj_weight' : 'weight';
      const name = path ? `${path}.${own}` : own;
      const mask = this.masks.get(name);
      if (!mask) continue;
      let sw: SparseWeight;
      if (m instanceof Linear || m instanceof SelfAttention) {
        const [weight, bias, activation] = m instanceof Linear ? [m.weight, m.bias, m.activation] : [m.inProjWeight, m.inProjBias, 'none' as const];
        const { pattern, density } = maskPattern(mask, weight.shape[0], weight.shape[1], be);
        if (tokenwise.has(m) ? !useSparseBelow(density, mode, sparseTokenLinearThreshold(weight.shape[1], weight.shape[0])) : !useSparse(density, mode, weight.size)) continue;
        sw = { name, weight, bias, activation, pattern, vals: new Tensor(packValues(pattern, weight.data), [pattern.nnz], true) };
      } else if (m instanceof Conv1d && m.padding < m.kernel) {
        const { pattern, density } = convMaskPattern(mask, m.outChannels, m.inChannels, 1, m.kernel);
        if (!useSparseBelow(density, mode, SPARSE_CONV1D_DENSITY_THRESHOLD)) continue;
        sw = { name, weight: m.weight, layer: m, pattern, vals: new Tensor(packValues(pattern, m.weight.data), [pattern.nnz], true), workspace: new Workspace() };
      } else if (m instanceof Conv2d && sparseConvFits(m.kernel, m.geometry)) {
        const { pattern, density } = convMaskPattern(mask, m.outChannels, m.inChannels, m.kernel[0], m.kernel[1]);
        const winograd = usesWinograd(m.inChannels, m.outChannels, m.kernel[0], m.kernel[1], m.geometry);
        const pixels = macs?.has(name) ? macs.get(name)! / m.weight.size : undefined;
        if (!useSparseBelow(density, mode, sparseConvThreshold(m.inChannels, m.outChannels, winograd, opts.context.settings.simd, pixels))) continue;
        sw = { name, weight: m.weight, layer: m, pattern, vals: new Tensor(packValues(pattern, m.weight.data), [pattern.nnz], true), workspace: new Workspace() };
      } else {
        continue;
      }
      sparseOf.set(m, sw);
      this.sparse.push(sw);
    }
    this.forward = compileModule(model, sparseOf);
    this.sparseWeights = new Set(this.sparse.map((s) => s.name));
    const sparseByName = new Map(this.sparse.map((s) => [s.name, s]));
    const params = model.namedParameters();
    this.slotInfo = params.map(([n, t]) => ({ name: n, size: t.size, sparse: sparseByName.get(n) ?? null }));
    const slots: ParamSlot[] = params.map(([n, t]) => {
      const packed = sparseByName.get(n)?.vals;
      return packed ? { tensor: packed, mask: null } : { tensor: t, mask: this.masks.get(n) ?? null };
    });
    this.optimizer = opts.optimizer ? new Optimizer(slots, opts.optimizer) : null;
  }

  step(batches: Minibatches, losses: Float64Array, lr?: number): number {
    const { data, order, from, batchSize } = batches;
    check(this.optimizer !== null, 'program: compiled for evaluation only, it cannot train');
    const { x, labels } = this.batchBuffers(data, batchSize);
    for (let s = 0; s < losses.length; s++) {
      data.gather(order, from + s * batchSize, batchSize, x.data, labels);
      const loss = (losses[s] = this.stepArena.run(() => {
        const t = softmaxCrossEntropy(this.forward(x), labels);
        const value = t.data[0];
        if (Number.isFinite(value)) {
          t.backward();
          this.optimizer!.step(lr);
        }
        return value;
      }));
      if (!Number.isFinite(loss)) return s + 1;
    }
    return losses.length;
  }

  evaluate(data: Dataset): EvalResult {
    if (data.length === 0) return { loss: NaN, accuracy: NaN };
    const be = getBackend();
    const batchSize = this.evalBatchSize(data);
    const d = data.sampleSize, l = data.labelSize;
    const training = this.model.training;
    this.model.eval();
    let lossSum = 0, correct = 0;
    try {
      noGrad(() => {
        for (let from = 0; from < data.length; from += batchSize) {
          const n = Math.min(batchSize, data.length - from);
          const x = new Tensor(data.images.subarray(from * d, (from + n) * d), [n, ...data.sampleShape]);
          const labels = data.labels.subarray(from * l, (from + n) * l);
          this.evalArena.run(() => {
            const logits = this.forward(x);
            const classes = logits.shape[logits.shape.length - 1], rows = logits.size / classes;
            check(rows === labels.length, () => `${this.model.name}: ${rows} rows of logits for ${labels.length} labels (data set labels [${data.labelShape.join(', ')}] per sample)`);
            lossSum += be.softmaxXent(logits.data, labels, rows, classes, null, 0);
            correct += be.countCorrect(logits.data, labels, rows, classes);
          });
        }
      });
    } finally {
      this.model.train(training);
    }
    // Per label: per example, or per position (a language model's loss per token).
    return { loss: lossSum / data.labels.length, accuracy: correct / data.labels.length };
  }

  /**
   * Samples per evaluation batch. Image data (conv nets) goes in batches of 100: a Conv-2
   * layer's output for 1000 CIFAR images is 262 MB. Flat samples go in batches of up to
   * 1000, fewer where one sample's pass takes more than EVAL_FLOATS / 1000 floats of
   * buffers (measured once on the first 64 samples): a sequence model keeps every
   * position's activations, and a 4-block char_transformer's pass over 1000 chunks of 64
   * characters took 2.6 GB.
   */
  private evalBatchSize(data: Dataset): number {
    if (data.sampleShape.length > 1) return 100;
    if (this.evalFloatsPerSample === null) {
      const n = Math.min(64, data.length), d = data.sampleSize;
      const probe = new BufferArena();
      const x = new Tensor(data.images.subarray(0, n * d), [n, ...data.sampleShape]);
      const training = this.model.training;
      this.model.eval();
      try {
        noGrad(() => probe.run(() => this.forward(x)));
      } finally {
        this.model.train(training);
      }
      this.evalFloatsPerSample = probe.floats() / n;
    }
    return flatEvalBatch(this.evalFloatsPerSample);
  }

  state(): StateDict {
    const out = this.model.state();
    for (const s of this.sparse) out.set(s.name, unpackValues(s.pattern, s.vals.data, new Float32Array(s.weight.size)));
    return out;
  }

  load(state: StateDict): void {
    this.model.loadState(state);
    applyMasks(this.model, this.masks);
    for (const s of this.sparse) packValues(s.pattern, s.weight.data, s.vals.data);
  }

  writeBack(): void {
    for (const s of this.sparse) {
      s.weight.data.fill(0);
      unpackValues(s.pattern, s.vals.data, s.weight.data);
    }
  }

  optimizerState(): OptimizerState {
    const opt = this.trainer();
    const names = stateNames(opt.settings), slots = opt.slotState();
    const arrays = new Map<string, Float32Array>();
    this.slotInfo.forEach(({ name, size, sparse }, i) => {
      names.forEach((k, j) => {
        const a = slots[i][j];
        arrays.set(`${name}.${k}`, sparse ? unpackValues(sparse.pattern, a, new Float32Array(size)) : Float32Array.from(a));
      });
    });
    return { steps: opt.steps, arrays };
  }

  loadOptimizerState(state: OptimizerState): void {
    const opt = this.trainer();
    const names = stateNames(opt.settings), slots = opt.slotState();
    checkOptimizerState(state, new Map(this.slotInfo.flatMap(({ name, size }) => names.map((k) => [`${name}.${k}`, size] as [string, number]))));
    this.slotInfo.forEach(({ name, sparse }, i) => {
      names.forEach((k, j) => {
        const src = state.arrays.get(`${name}.${k}`)!;
        if (sparse) packValues(sparse.pattern, src, slots[i][j]);
        else slots[i][j].set(src);
      });
    });
    opt.steps = state.steps;
  }

  private trainer(): Optimizer {
    check(this.optimizer !== null, 'program: compiled for evaluation only, it has no optimiser state');
    return this.optimizer;
  }

  private batchBuffers(data: Dataset, batchSize: number): { x: Tensor; labels: Int32Array } {
    const shape = [batchSize, ...data.sampleShape];
    if (!this.batch || this.batch.labels.length !== batchSize * data.labelSize || this.batch.x.shape.length !== shape.length || this.batch.x.shape.some((v, i) => v !== shape[i])) {
      this.batch = { x: Tensor.zeros(shape), labels: new Int32Array(batchSize * data.labelSize) };
    }
    return this.batch;
  }
}

/**
 * The Linear, Conv2d and Conv1d layers that are children of a Sequential reached from `m`
 * through Sequentials only, a residual block's two 3×3 convolutions, and a Transformer
 * block's products (its attention, standing for in_proj, out_proj, linear1, linear2; these
 * also go into `tokenwise`): the ones whose computation the program can replace (any other
 * module runs its own forward, which reads its layers' dense weights).
 */
function sequentialLayers(m: Module, out: Set<Module>, tokenwise: Set<Module>): Set<Module> {
  if (m instanceof Sequential) {
    for (const [, c] of m.namedChildren()) {
      if (c instanceof Linear || c instanceof Conv2d || c instanceof Conv1d) out.add(c);
      else sequentialLayers(c, out, tokenwise);
    }
  } else if (m instanceof BasicBlock) {
    out.add(m.conv1).add(m.conv2);
  } else if (m instanceof TransformerBlock) {
    for (const l of [m.selfAttn, m.selfAttn.outProj, m.linear1, m.linear2]) {
      out.add(l);
      tokenwise.add(l);
    }
  }
  return out;
}

/** The sparse product of `m` (a Linear, or an attention's in_proj), if the program computes one. */
function sparseLinearOf(m: Module, sparseOf: ReadonlyMap<Module, SparseWeight>): SparseLinear | null {
  const s = sparseOf.get(m);
  return s && !('workspace' in s) ? s : null;
}

/** Panels through the sparse products in order. */
function throughSparse(p: Panels, chain: readonly SparseLinear[]): Panels {
  for (const s of chain) p = sparseLinearPanels(p, s.vals, s.pattern, s.bias, s.activation);
  return p;
}

/**
 * A Transformer block as the program computes it: each sparse product on panels (the
 * feed-forward pair as one chain when both are sparse), the others as the block's own.
 */
function compileTransformerBlock(m: TransformerBlock, sparseOf: ReadonlyMap<Module, SparseWeight>): (x: Tensor) => Tensor {
  const attn = m.selfAttn;
  const onPanels = (s: SparseLinear) => (t: Tensor) => fromPanels(throughSparse(toPanels(t), [s]));
  const sIn = sparseLinearOf(attn, sparseOf), sOut = sparseLinearOf(attn.outProj, sparseOf);
  const inProj = sIn ? onPanels(sIn) : (t: Tensor) => linear(t, attn.inProjWeight, attn.inProjBias);
  const outProj = sOut ? onPanels(sOut) : (t: Tensor) => attn.outProj.forward(t);
  const s1 = sparseLinearOf(m.linear1, sparseOf), s2 = sparseLinearOf(m.linear2, sparseOf);
  const linear1 = s1 ? onPanels(s1) : (t: Tensor) => m.linear1.forward(t);
  const linear2 = s2 ? onPanels(s2) : (t: Tensor) => m.linear2.forward(t);
  const feedForward = s1 && s2 ? (t: Tensor) => fromPanels(throughSparse(toPanels(t), [s1, s2])) : (t: Tensor) => linear2(linear1(t));
  return (x) => m.forwardWith(x, { attention: (t) => attn.forwardWith(t, inProj, outProj), feedForward });
}

/** A convolution as the program computes it: sparse where it has a sparse weight, else its own forward. */
function compileConv(c: Conv2d | Conv1d, sparseOf: ReadonlyMap<Module, SparseWeight>): (x: Tensor) => Tensor {
  const s = sparseOf.get(c);
  if (!s || !('workspace' in s)) return (x) => c.forward(x);
  const { vals, pattern, layer, workspace } = s;
  if (layer instanceof Conv1d) {
    // As Conv1d computes itself: the 2-D convolution of a height-1 image.
    const geometry = { strideH: 1, strideW: 1, padH: 0, padW: layer.padding };
    return (x) => {
      const [n, ch, t] = x.shape;
      const y = sparseConv2d(reshape(x, [n, ch, 1, t]), vals, pattern, layer.bias, geometry, layer.activation, workspace);
      return reshape(y, [n, layer.outChannels, y.shape[3]]);
    };
  }
  return (x) => sparseConv2d(x, vals, pattern, layer.bias, layer.geometry, layer.activation, workspace);
}

/**
 * The forward function of `m`: a Sequential's children in order, each run of consecutive
 * sparse Linear layers as one chain on panels, each sparse Conv2d or Conv1d as a sparse
 * convolution, a residual block with its sparse convolutions in place of its own,
 * each dense pair that runs as one op (Module.fusedWith) as that op; any other module as
 * its own forward.
 */
function compileModule(m: Module, sparseOf: ReadonlyMap<Module, SparseWeight>): (x: Tensor) => Tensor {
  if (m instanceof BasicBlock) {
    const conv1 = compileConv(m.conv1, sparseOf), conv2 = compileConv(m.conv2, sparseOf);
    return (x) => m.forwardWith(x, conv1, conv2);
  }
  if (m instanceof TransformerBlock) return compileTransformerBlock(m, sparseOf);
  if (!(m instanceof Sequential)) return (x) => m.forward(x);
  const steps: Array<(x: Tensor) => Tensor> = [];
  const children = m.namedChildren().map(([, c]) => c);
  for (let i = 0; i < children.length;) {
    const conv = sparseOf.get(children[i]);
    if (conv && 'workspace' in conv) {
      steps.push(compileConv(conv.layer, sparseOf));
      i++;
      continue;
    }
    const chain: SparseLinear[] = [];
    for (let s = sparseOf.get(children[i]); s && !('workspace' in s); s = sparseOf.get(children[i])) {
      chain.push(s);
      i++;
    }
    if (chain.length === 0) {
      const fused = fusedAt(children, i);
      steps.push(fused ?? compileModule(children[i], sparseOf));
      i += fused ? 2 : 1;
      continue;
    }
    steps.push((x) => fromPanels(throughSparse(toPanels(x), chain)));
  }
  return (x) => {
    for (const f of steps) x = f(x);
    return x;
  };
}
