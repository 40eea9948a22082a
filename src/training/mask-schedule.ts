import type { StateDict } from '../nn/module.js';

/**
 * Something that acts on a training's masks while it trains: dynamic sparse training
 * (SET, RigL: drop and regrow connections every so many iterations) or an early-bird
 * search (draw the ticket once the pruning mask settles, then stop). train() calls it at
 * its points, before the step of that iteration, and applies what it says: new masks
 * (the program is compiled again for them, with the live weights and optimiser state;
 * weights and optimiser moments outside the new masks are zero, so a connection grown
 * back starts at zero), or the end of training there. It lives beside the pruning code
 * (src/dynamic/), which training never imports; this interface is all train() knows.
 */
export interface MaskSchedule {
  /** Whether it may give new masks (else it only stops training). */
  readonly changesMasks: boolean;
  /** Its first point after iteration `it` (Infinity: none). */
  nextPoint(it: number): number;
  /** Called at a point: what to do there (null: nothing). */
  at(live: LiveTraining): MaskAction | null;
  /** Everything it carries from one point to the next, for a checkpoint. */
  save(): MaskScheduleState;
  /** Back to a state save() gave (a checkpoint of this same training). */
  restore(state: MaskScheduleState): void;
}

export type MaskAction =
  | {
    readonly kind: 'masks';
    /**
     * The masks from here on. A schedule may give the same array again, changed in place (so
     * train() keeps no mask of an earlier point): a layer whose array is unchanged counts
     * as changed only when `grown` names it.
     */
    readonly masks: ReadonlyMap<string, Float32Array>;
    /** Entries of the new masks that are new connections (start at zero, fresh moments) even if they were active before. */
    readonly grown?: ReadonlyMap<string, Int32Array>;
    /**
     * For a layer that `grown` names: the entries of its previous mask that the new one
     * clears, so that the new mask is the previous one without them and with the grown ones
     * (the program then need not read it).
     */
    readonly dropped?: ReadonlyMap<string, Int32Array>;
    /** Every layer keeps its count of kept weights (so the cost of a step is unchanged). */
    readonly sameCounts?: boolean;
  }
  | { readonly kind: 'stop' };

/** A mask schedule's state: plain JSON and named arrays. */
export interface MaskScheduleState {
  readonly json: unknown;
  readonly arrays: ReadonlyMap<string, Float32Array>;
}

/** What a mask schedule sees of the training at one of its points. */
export interface LiveTraining {
  /** The iteration: every step before it is made. */
  readonly iteration: number;
  /** The masks the program trains with now, by weight name. */
  readonly masks: ReadonlyMap<string, Float32Array>;
  /** A copy of the live weights (entries outside the masks zero). */
  weights(): StateDict;
  /**
   * The flat indices of the `count` kept weights of `name` (its mask's nonzeros) of smallest
   * magnitude in the live weights, ties to the lower index, into out[0..count) in
   * increasing order (as Backend.selectByMagnitude among the kept entries; cheaper than
   * weights() where the program has it).
   */
  smallestWeights(name: string, count: number, out: Int32Array): void;
  /**
   * The gradient of the mean loss of this iteration's minibatch at the live weights, at
   * every entry of the named weights, as if they were dense (RigL's growth criterion). It
   * costs a dense training step's forward and backward pass, which the training's FLOPs
   * count. The arrays are valid until the next call.
   */
  denseGradients(names: readonly string[]): Map<string, Float32Array>;
}
