import type { Backend } from '../backend/index.js';
import { LthError } from '../core/errors.js';
import { countOnes } from '../pruning/mask.js';
import { Rng } from '../core/rng.js';
import type { LiveTraining, MaskAction, MaskSchedule, MaskScheduleState } from '../training/mask-schedule.js';

/** Dynamic sparse training methods: how connections are regrown after the smallest are dropped. */
export type SparseTrainMethod = 'set' | 'rigl';
export const SPARSE_TRAIN_METHODS: readonly SparseTrainMethod[] = ['set', 'rigl'];

export interface SparseTrainSettings {
  readonly method: SparseTrainMethod;
  /** ΔT: iterations between drop/regrow updates. */
  readonly updateEvery: number;
  /** α: the share of a layer's active weights dropped (and regrown) at the first update, cosine-decayed after. */
  readonly dropFraction: number;
  /** T_end: the iteration from which the masks stay as they are. */
  readonly endAt: number;
  /** Seeds SET's random growth: update u of layer l draws from (seed, 'set_grow', u, l). */
  readonly seed: number;
  /** The kernels that select what is dropped and grown (Backend.selectByMagnitude). */
  readonly backend: Backend;
}

/**
 * Dynamic sparse training (SET, Mocanu et al. 2018; RigL, Evci et al. ICML 2020) as a
 * mask schedule: at every multiple t of ΔT before T_end, each sparse layer (one with both
 * kept and pruned weights) drops the k = ⌊α_t·active⌋ active weights of smallest
 * magnitude, α_t = α/2·(1 + cos(π·t/T_end)), and grows k connections among the inactive
 * ones (those just dropped included): at random (SET) or where the dense gradient of this
 * iteration's minibatch is largest in magnitude (RigL; computed on update iterations
 * only). Grown connections start at zero with zero optimiser moments; each layer's count
 * of active weights never changes. Ties go to the lowest index.
 */
export class SparseTraining implements MaskSchedule {
  readonly changesMasks = true;
  /** Updates made, and connections regrown over all of them. */
  updates = 0;
  regrown = 0;
  /** Each updated layer's own mask and its count of active entries, by name. */
  private readonly layers = new Map<string, LayerState>();

  constructor(readonly settings: SparseTrainSettings) {
    const { updateEvery, dropFraction, endAt } = settings;
    if (!(Number.isInteger(updateEvery) && updateEvery >= 1)) throw new LthError(`--update-every must be a positive number of iterations, got ${updateEvery}`);
    if (!(dropFraction > 0 && dropFraction < 1)) throw new LthError(`--drop-fraction must be in (0, 1), got ${dropFraction}`);
    if (!(Number.isInteger(endAt) && endAt >= 0)) throw new LthError(`sparse training: the update end must be an iteration, got ${endAt}`);
  }

  /** α_t: the drop fraction at iteration t. */
  dropFractionAt(t: number): number {
    const { dropFraction, endAt } = this.settings;
    return t >= endAt ? 0 : (dropFraction / 2) * (1 + Math.cos((Math.PI * t) / endAt));
  }

  nextPoint(it: number): number {
    const { updateEvery, endAt } = this.settings;
    const p = (Math.floor(it / updateEvery) + 1) * updateEvery;
    return p < endAt ? p : Infinity;
  }

  at(live: LiveTraining): MaskAction | null {
    const fraction = this.dropFractionAt(live.iteration);
    const update = this.updates++;
    if (fraction === 0) return null;
    // A layer is sparse while it has kept and pruned weights; its count of kept ones never changes.
    const layers = [...live.masks].filter(([name, m]) => {
      const active = this.layer(name, m).active;
      return active > 0 && active < m.length;
    }).map(([n]) => n);
    if (layers.length === 0) return null;
    const gradients = this.settings.method === 'rigl' ? live.denseGradients(layers) : null;
    const masks = new Map(live.masks), grown = new Map<string, Int32Array>(), cleared = new Map<string, Int32Array>();
    layers.forEach((name, l) => {
      const s = this.layer(name, live.masks.get(name)!);
      const active = s.active, k = Math.floor(fraction * active);
      if (k === 0) return;
      const dropped = new Int32Array(k), grow = new Int32Array(k);
      live.smallestWeights(name, k, dropped);
      s.source = null;
      for (let j = 0; j < k; j++) s.mask[dropped[j]] = 0;
      if (gradients) {
        this.settings.backend.selectByMagnitude(gradients.get(name)!, s.mask, 0, k, true, grow);
        for (let j = 0; j < k; j++) s.mask[grow[j]] = 1;
      } else {
        growRandom(s.mask, s.mask.length - active + k, k, new Rng(this.settings.seed, 'set_grow', update, l), grow);
      }
      masks.set(name, s.mask);
      grown.set(name, grow);
      cleared.set(name, dropped);
      this.regrown += k;
    });
    return grown.size ? { kind: 'masks', masks, grown, dropped: cleared, sameCounts: true } : null;
  }

  /**
   * The state of layer `name`, whose live mask is `mask`: its own (the masks this schedule
   * gives, changed in place from one update to the next) once it has updated the layer, or
   * the one made from that same array before (a layer it never changed); made from `mask`
   * when the layer is new to it or the training's mask is another array (the first update,
   * or one after a resume from a checkpoint).
   */
  private layer(name: string, mask: Float32Array): LayerState {
    let s = this.layers.get(name);
    if (!s || (s.mask !== mask && s.source !== mask)) this.layers.set(name, (s = new LayerState(mask)));
    return s;
  }

  save(): MaskScheduleState {
    return { json: { updates: this.updates, regrown: this.regrown }, arrays: new Map() };
  }

  restore(state: MaskScheduleState): void {
    const j = state.json as { updates?: unknown; regrown?: unknown } | null;
    if (!j || !Number.isInteger(j.updates) || !Number.isInteger(j.regrown)) throw new LthError('its sparse-training state is not {updates, regrown}');
    this.updates = j.updates as number;
    this.regrown = j.regrown as number;
  }
}

/**
 * A layer's mask as dynamic sparse training keeps it: its own copy, changed in place, and
 * its count of active entries (which never changes).
 */
class LayerState {
  readonly mask: Float32Array;
  readonly active: number;
  /** The array it was made from, while `mask` is still a copy of it (null once changed). */
  source: Float32Array | null;

  constructor(mask: Float32Array) {
    this.mask = mask.slice();
    this.source = mask;
    this.active = countOnes(mask);
  }
}

/**
 * Grows k connections drawn uniformly among the `inactive` entries where `mask` is 0: positions drawn
 * uniformly over the whole layer, each kept if still inactive (set to 1 in `mask`) and
 * drawn again otherwise, which samples k of the inactive entries uniformly without
 * replacement. At the densities dynamic sparse training runs at most entries are inactive,
 * so this takes about k draws rather than a pass over the layer. The indices go into
 * `out` in increasing order.
 */
function growRandom(mask: Float32Array, inactive: number, k: number, rng: Rng, out: Int32Array): void {
  if (k > inactive) throw new Error(`sparse training: asked to grow ${k} of ${inactive} inactive connections`);
  for (let j = 0; j < k;) {
    const i = rng.int(mask.length);
    if (mask[i] !== 0) continue;
    mask[i] = 1;
    out[j++] = i;
  }
  out.sort();
}
