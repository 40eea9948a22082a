import { check } from '../core/errors.js';
import type { Schema, Values } from '../core/hparams.js';
import { DENSITY_RULES, type DensityRule } from './densities.js';
import { SPARSE_TRAIN_METHODS, type SparseTrainMethod } from './sparse-training.js';

/** How dynamic sparse training changes its masks: shared by `lth train --sparse-train` and the lottery's rigl and set branches. */
export const SPARSE_UPDATE_SCHEMA = {
  updateEvery: { type: 'integer', help: 'dynamic sparse training (lth train --sparse-train; lth lottery --branches rigl or set): iterations between drop/regrow updates (ΔT)', default: 100 },
  dropFraction: { type: 'number', help: "dynamic sparse training: share of each layer's active weights dropped and regrown at the first update, cosine-decayed to 0 at --update-end (α)", default: 0.3 },
  updateEnd: { type: 'number', help: 'dynamic sparse training: fraction of the training budget after which the masks stay as they are (T_end)', default: 0.75 },
} as const satisfies Schema;

/** `lth train`'s options for training sparse from scratch. */
export const SPARSE_TRAIN_SCHEMA = {
  sparseTrain: { type: 'string', help: 'train sparse from scratch with dynamic sparsity: set (random regrowth) or rigl (regrowth by gradient)', choices: SPARSE_TRAIN_METHODS },
  density: { type: 'number', help: 'with --sparse-train: the fraction of prunable weights kept' },
  densityRule: { type: 'string', help: 'with --sparse-train: how the density is spread over layers: erk (Erdős–Rényi-Kernel) or uniform', choices: DENSITY_RULES, default: 'erk' },
  ...SPARSE_UPDATE_SCHEMA,
} as const satisfies Schema;

export interface SparseUpdateHparams {
  updateEvery: number;
  dropFraction: number;
  updateEnd: number;
}

/** The schema's defaults (runs of older versions record no sparse-update settings). */
export const SPARSE_UPDATE_DEFAULTS: SparseUpdateHparams = {
  updateEvery: SPARSE_UPDATE_SCHEMA.updateEvery.default, dropFraction: SPARSE_UPDATE_SCHEMA.dropFraction.default, updateEnd: SPARSE_UPDATE_SCHEMA.updateEnd.default,
};

export interface SparseTrainHparams extends SparseUpdateHparams {
  method: SparseTrainMethod;
  density: number;
  densityRule: DensityRule;
}

/** The drop/regrow settings, checked; `used` says whether anything in the run trains with them (else setting one is an error naming `why`). */
export function resolveSparseUpdate(v: Values, used: boolean, why: string): SparseUpdateHparams {
  const h: SparseUpdateHparams = {
    updateEvery: Number(v.updateEvery ?? SPARSE_UPDATE_SCHEMA.updateEvery.default),
    dropFraction: Number(v.dropFraction ?? SPARSE_UPDATE_SCHEMA.dropFraction.default),
    updateEnd: Number(v.updateEnd ?? SPARSE_UPDATE_SCHEMA.updateEnd.default),
  };
  const set = Object.keys(SPARSE_UPDATE_SCHEMA).filter((k) => v[k] !== undefined);
  check(used || set.length === 0, () => `--${set.map((k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(', --')}: ${why}`);
  check(Number.isInteger(h.updateEvery) && h.updateEvery >= 1, `--update-every must be a positive integer, got ${h.updateEvery}`);
  check(h.dropFraction > 0 && h.dropFraction < 1, `--drop-fraction must be in (0, 1), got ${h.dropFraction}`);
  check(h.updateEnd > 0 && h.updateEnd <= 1, `--update-end must be in (0, 1], got ${h.updateEnd}`);
  return h;
}

/** That the drop/regrow settings update the masks at least once in a training of `iterations` iterations. */
export function checkSparseUpdates(h: SparseUpdateHparams, iterations: number): void {
  const endAt = Math.floor(h.updateEnd * iterations);
  check(h.updateEvery < endAt, () => `--update-every ${h.updateEvery} leaves no drop/regrow update before --update-end ${h.updateEnd} of the ${iterations}-iteration budget `
    + `(iteration ${endAt}): lower --update-every, or raise --update-end or --steps`);
}

/** `lth train`'s sparse-training options, checked: null when --sparse-train is not given (and then none of them may be). */
export function resolveSparseTrain(v: Values): SparseTrainHparams | null {
  const method = v.sparseTrain as SparseTrainMethod | undefined;
  const update = resolveSparseUpdate(v, method !== undefined, 'they set how --sparse-train updates its masks; add --sparse-train set|rigl');
  if (method === undefined) {
    check(v.density === undefined && v.densityRule === undefined, '--density and --density-rule set the sparsity of --sparse-train; add --sparse-train set|rigl');
    return null;
  }
  const density = Number(v.density);
  check(v.density !== undefined, `--sparse-train ${method} needs --density D, the fraction of weights kept (e.g. 0.1)`);
  check(density > 0 && density < 1, `--density must be in (0, 1), got ${v.density}`);
  return { method, density, densityRule: (v.densityRule ?? 'erk') as DensityRule, ...update };
}
