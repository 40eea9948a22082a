import type { Rng } from '../core/rng.js';
import type { ModelSpec } from '../models/spec.js';
import type { Model, StateDict } from '../nn/model.js';
import type { SparseTrainMethod } from '../dynamic/sparse-training.js';
import type { Mask } from '../pruning/mask.js';

/**
 * A kind of stage trained at every pruned level of a lottery run: the IMP ticket itself
 * ('main') or a control. A branch says where its stage starts from — its weights and its
 * mask — given the level's IMP mask; the planner, the stage runner, the store's layout (a
 * directory per branch), the summary and the report all take branches from the registry
 * (branches.ts).
 */
export interface Branch {
  /** Registry key, the --branches value and the stage's directory name: frozen once released. */
  readonly name: string;
  /** How reports name its stages ('random reinit'). */
  readonly label: string;
  /** One line for --help and --dry-run: what the stage starts from. */
  readonly description: string;
  /** The stage's starting weights (masked) and mask at a pruned level. */
  start(ctx: BranchContext): StageStart;
  /**
   * Why the branch cannot run in a run of this kind, or null: checked with the run's other
   * hyperparameters, before anything trains.
   */
  refuses?(run: BranchRun): string | null;
  /**
   * What the stage measures once its network is trained, beyond the training curve
   * (recorded as done.json's `analysis`); most branches measure nothing more.
   */
  analyse?(ctx: AnalysisContext): Record<string, unknown>;
}

/** How refuses() names levels that this run did not prune from trained weights. */
export const NOT_PRUNED_HERE: Readonly<Record<'at_init' | 'transfer', string>> = {
  at_init: 'pruned at initialisation (--at-init)',
  transfer: 'taken from another run (--transfer-from)',
};

/** What a branch's refuses() may depend on. */
export interface BranchRun {
  /** How the run's levels get their masks: pruning trained weights ('imp'), at initialisation, or from another run. */
  readonly masks: 'imp' | 'at_init' | 'transfer';
  readonly model: ModelSpec;
}

export interface StageStart {
  readonly init: StateDict;
  /** The mask of the network's prunable weights (all ones: nothing pruned). */
  readonly mask: Mask;
  /** The network trained, when it is not the run's model (a smaller dense one). */
  readonly model?: Model;
  /**
   * Where in the run's budget the stage trains: from the rewind step to the end, with the
   * data order and learning rate of those iterations (default, as weight rewinding), or
   * the whole budget from iteration 0 (a network trained from scratch).
   */
  readonly from?: 'rewind' | 'start';
  /** The learning rate: the schedule's at each iteration (default), or its final rate throughout (fine-tuning). */
  readonly lr?: 'schedule' | 'final';
  /** Dynamic sparse training: the mask changes as the stage trains (SET or RigL drop and regrow connections). */
  readonly sparseTrain?: SparseTrainMethod;
}

export interface BranchContext {
  readonly level: number;
  readonly seed: number;
  /** The mask IMP reached at this level. */
  readonly levelMask: Mask;
  /** The weights pruned levels reset to: θ0, or the dense run's weights at the rewind step. */
  readonly rewind: StateDict;
  /** The trained weights of the network this level pruned (level k-1's ticket); null when levels are pruned at initialisation. */
  readonly trained: StateDict | null;
  /** A fresh initialisation of the network, drawn from (seed, stream, level). */
  freshInit(stream: string): StateDict;
  /** A random stream of this stage, (seed, stream, level). */
  rng(stream: string): Rng;
  /** The mask the run's strategy draws at this level keeping the lowest-scored weights instead of the highest. */
  pruneInverted(): Mask;
  /**
   * A dense network of the run's architecture with hidden widths shrunk to about `weights`
   * prunable weights, with its own fresh initialisation from (seed, stream, level).
   */
  smallDense(weights: number, stream: string): { model: Model; init: StateDict };
}

export interface AnalysisContext {
  readonly seed: number;
  readonly start: StageStart;
  /** The stage's trained weights. */
  readonly trained: StateDict;
  /** Trains the stage's network again from its start, data in the order drawn from `orderSeed`; its final weights. */
  retrain(orderSeed: number, what: string): StateDict;
  /** Test loss and accuracy of weights of the stage's network, under its mask. */
  test(state: StateDict): { loss: number; accuracy: number };
}

/** `state` with the entries pruned by `mask` set to zero (tensors without a mask copied as they are). */
export function masked(state: StateDict, mask: Mask): StateDict {
  return new Map([...state].map(([n, v]) => {
    const m = mask.get(n);
    return [n, m ? v.map((x, i) => (m[i] === 0 ? 0 : x)) : Float32Array.from(v)];
  }));
}
