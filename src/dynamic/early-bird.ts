import { LthError } from '../core/errors.js';
import type { StateDict } from '../nn/module.js';
import type { Mask } from '../pruning/mask.js';
import type { LiveTraining, MaskAction, MaskSchedule, MaskScheduleState } from '../training/mask-schedule.js';

/** The ε of You et al. (ICLR 2020): the ticket is drawn once consecutive masks differ in less than this share of weights. */
export const EARLY_BIRD_EPSILON = 0.1;

export interface EarlyBirdSettings {
  /** Iterations between mask draws (an epoch by default). */
  readonly every: number;
  readonly epsilon: number;
  /** The first draw comes after this iteration (the rewind step: the rewind weights are kept first). */
  readonly after: number;
  /** The mask the run's pruning strategy draws from these weights. */
  readonly draw: (weights: StateDict) => Mask;
  /** The mask the training has (the distance counts its kept weights only); none: every weight. */
  readonly within?: Mask;
}

/** One point of the search: the distance between the mask drawn here and the one drawn before. */
export interface EarlyBirdPoint {
  readonly iteration: number;
  readonly distance: number;
}

/**
 * The normalised Hamming distance of two masks over the same weights (You et al.'s mask
 * distance): the share of entries where one keeps and the other prunes, among all entries,
 * or among those `within` keeps. A pruned level's next masks both prune what the level has
 * pruned already: counted over all weights, their distance would shrink with the density
 * whatever the training does, so the search measures it over the level's remaining weights
 * (at level 0, all of them).
 */
export function maskDistance(a: Mask, b: Mask, within?: Mask): number {
  let differ = 0, total = 0;
  for (const [name, x] of a) {
    const y = b.get(name), w = within?.get(name);
    if (!y || y.length !== x.length || (within && (!w || w.length !== x.length))) throw new Error(`early bird: the masks differ in their weights (${name})`);
    for (let i = 0; i < x.length; i++) {
      if (w && w[i] === 0) continue;
      total++;
      if ((x[i] !== 0) !== (y[i] !== 0)) differ++;
    }
  }
  if (b.size !== a.size) throw new Error('early bird: the masks differ in their weights');
  return total ? differ / total : 0;
}

/**
 * Early-bird tickets (You et al., ICLR 2020) as a mask schedule: every `every` iterations
 * the strategy's mask of the live weights is drawn; at the first draw within ε (normalised
 * Hamming distance over the weights still kept) of the mask drawn the time before, the
 * ticket is there and training stops. The pruning that follows prunes those weights, so it draws that same mask.
 */
export class EarlyBird implements MaskSchedule {
  readonly changesMasks = false;
  readonly points: EarlyBirdPoint[] = [];
  drawnAt: number | null = null;
  private previous: Mask | null = null;

  constructor(readonly settings: EarlyBirdSettings) {
    const { every, epsilon, after } = settings;
    if (!(Number.isInteger(every) && every >= 1)) throw new LthError(`--early-bird-every must be at least one iteration, got ${every}`);
    if (!(epsilon > 0 && epsilon < 1)) throw new LthError(`--early-bird-epsilon must be in (0, 1), got ${epsilon}`);
    if (!(Number.isInteger(after) && after >= 0)) throw new Error(`early bird: 'after' must be an iteration, got ${after}`);
  }

  nextPoint(it: number): number {
    const { every, after } = this.settings;
    return (Math.floor(Math.max(it, after) / every) + 1) * every;
  }

  at(live: LiveTraining): MaskAction | null {
    const mask = this.settings.draw(live.weights());
    const previous = this.previous;
    this.previous = mask;
    if (!previous) return null;
    const distance = maskDistance(previous, mask, this.settings.within);
    this.points.push({ iteration: live.iteration, distance });
    if (distance >= this.settings.epsilon) return null;
    this.drawnAt = live.iteration;
    return { kind: 'stop' };
  }

  save(): MaskScheduleState {
    return { json: { points: this.points, drawnAt: this.drawnAt, names: this.previous ? [...this.previous.keys()] : null }, arrays: this.previous ?? new Map() };
  }

  restore(state: MaskScheduleState): void {
    const j = state.json as { points?: EarlyBirdPoint[]; drawnAt?: number | null; names?: string[] | null } | null;
    if (!j || !Array.isArray(j.points) || j.points.some((p) => !Number.isInteger(p?.iteration) || typeof p.distance !== 'number')) {
      throw new LthError('its early-bird state has no list of points');
    }
    this.points.splice(0, this.points.length, ...j.points);
    this.drawnAt = j.drawnAt ?? null;
    this.previous = j.names ? new Map(j.names.map((n) => {
      const a = state.arrays.get(n);
      if (!a) throw new LthError(`its early-bird state lacks the mask of ${n}`);
      return [n, a];
    })) : null;
  }
}
