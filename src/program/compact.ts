import type { Dataset } from '../data/dataset.js';
import { compaction, type Compaction } from '../nn/compact.js';
import type { Model } from '../nn/model.js';
import type { StateDict } from '../nn/module.js';
import { checkOptimizerState, stateNames, type OptimizerState } from '../nn/optim.js';
import { DenseMlpProgram } from './dense-mlp.js';
import { GraphProgram } from './graph.js';
import { applyMasks } from './masks.js';
import type { CompileOptions, EvalResult, Minibatches, Program } from './program.js';

/**
 * The program of a structurally pruned network (whole neurons or channels removed,
 * nn/compact.ts): the smaller dense network the masks leave, trained by a program of its
 * own with no masks and no sparse kernels: the dense-MLP program where that network is a
 * chain of Linear layers (and the fused mode allows it), else the graph program. Outside, it speaks the full model's names
 * and shapes: state(), optimizerState() and writeBack() expand (zero at removed units and
 * their connections, biases included), load() and loadOptimizerState() compact. It gives
 * the graph program's numbers on the same masks up to float summation order (tested): the
 * removed units' outputs reach nothing, so their gradients are zero there. One difference
 * no output sees: a removed unit's bias is zero here, where the graph program leaves it at
 * its starting value.
 */
export class CompactProgram implements Program {
  readonly kind = 'compact';
  readonly parallelEval = true;
  /**
   * Every masked weight: the compact layers hold exactly the masks' ones, so a step costs
   * each weight its density's share, as sparse kernels would (nn/flops.ts).
   */
  readonly sparseWeights: ReadonlySet<string>;
  private readonly inner: Program;
  private readonly masks: Map<string, Float32Array>;

  /**
   * The program for `model` under `opts.masks`, or null when they do not compact: see
   * compaction(), and a model with random streams (dropout), whose masks would be drawn
   * at the compact width and so differ from the full network's.
   */
  static compile(model: Model, opts: CompileOptions): CompactProgram | null {
    if (!opts.masks || opts.masks.size === 0 || Object.keys(model.randomState()).length > 0) return null;
    const c = compaction(model, opts.masks);
    return c ? new CompactProgram(model, opts, c) : null;
  }

  private constructor(private readonly model: Model, private readonly opts: CompileOptions, private readonly c: Compaction) {
    this.masks = applyMasks(model, opts.masks);
    c.model.loadState(c.compact(model.state()), 'the compacted weights');
    c.model.train(model.training);
    const inner = { optimizer: opts.optimizer, context: opts.context };
    this.inner = DenseMlpProgram.compile(c.model, inner) ?? new GraphProgram(c.model, inner);
    this.sparseWeights = new Set(this.masks.keys());
  }

  step(batches: Minibatches, losses: Float64Array, lr?: number): number {
    return this.inner.step(batches, losses, lr);
  }

  evaluate(data: Dataset): EvalResult {
    return this.inner.evaluate(data);
  }

  state(): StateDict {
    return this.c.expand(this.inner.state());
  }

  load(state: StateDict): void {
    this.model.loadState(state);
    applyMasks(this.model, this.masks);
    this.inner.load(this.c.compact(this.model.state()));
  }

  writeBack(): void {
    this.model.loadState(this.state(), 'the compact program\'s weights');
  }

  optimizerState(): OptimizerState {
    const { steps, arrays } = this.inner.optimizerState();
    return { steps, arrays: new Map([...arrays].map(([k, a]) => [k, this.c.expandTensor(parameterOf(k), a)])) };
  }

  loadOptimizerState(state: OptimizerState): void {
    if (!this.opts.optimizer) return this.inner.loadOptimizerState(state); // its error: compiled for evaluation only
    // Checked against the full model's names and sizes, as every program does.
    const names = stateNames(this.opts.optimizer);
    checkOptimizerState(state, new Map(this.model.namedParameters().flatMap(([n, t]) => names.map((k) => [`${n}.${k}`, t.size] as [string, number]))));
    this.inner.loadOptimizerState({ steps: state.steps, arrays: new Map([...state.arrays].map(([k, a]) => [k, this.c.compactTensor(parameterOf(k), a)])) });
  }
}

/** 'fc1.weight' of 'fc1.weight.exp_avg': state names never contain a dot. */
function parameterOf(key: string): string {
  return key.slice(0, key.lastIndexOf('.'));
}
