import type { Rng } from '../core/rng.js';
import type { StateDict } from '../nn/model.js';
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
  start(ctx: BranchContext): { init: StateDict; mask: Mask };
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
}

/** `state` with the entries pruned by `mask` set to zero (tensors without a mask copied as they are). */
export function masked(state: StateDict, mask: Mask): StateDict {
  return new Map([...state].map(([n, v]) => {
    const m = mask.get(n);
    return [n, m ? v.map((x, i) => (m[i] === 0 ? 0 : x)) : Float32Array.from(v)];
  }));
}
