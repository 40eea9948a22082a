import { LthError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Mask } from '../pruning/mask.js';

/** How a sparse network's overall density is spread over its layers. */
export type DensityRule = 'erk' | 'uniform';
export const DENSITY_RULES: readonly DensityRule[] = ['erk', 'uniform'];

/** A sparse weight: its name and shape ([out, in] or [out, in, kh, kw]). */
export interface SparseLayer {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Per-layer densities whose weighted mean over `layers` is `density`:
 * - 'uniform': every layer at `density`;
 * - 'erk' (Erdős–Rényi-Kernel, Evci et al. 2020): layer l at ε·(Σ dims)/(Π dims) of its
 *   shape, so small and narrow layers keep more; for a fully connected layer this is
 *   Mocanu et al.'s Erdős–Rényi rule, (n_in + n_out)/(n_in·n_out). A layer whose share
 *   would exceed 1 is dense, and ε is solved again for the rest (as RigL's code does).
 */
export function layerDensities(layers: readonly SparseLayer[], density: number, rule: DensityRule): Map<string, number> {
  if (!(density > 0 && density <= 1)) throw new LthError(`--density must be in (0, 1], got ${density}`);
  if (rule === 'uniform') return new Map(layers.map((l) => [l.name, density]));
  const size = (l: SparseLayer) => l.shape.reduce((a, b) => a * b, 1);
  const scale = (l: SparseLayer) => l.shape.reduce((a, b) => a + b, 0) / size(l);
  const total = layers.reduce((a, l) => a + size(l), 0);
  const dense = new Set<string>();
  for (;;) {
    // Σ over sparse layers of ε·scale·size = density·total − Σ over dense layers of size.
    const budget = density * total - layers.filter((l) => dense.has(l.name)).reduce((a, l) => a + size(l), 0);
    const weighted = layers.filter((l) => !dense.has(l.name)).reduce((a, l) => a + scale(l) * size(l), 0);
    const eps = weighted > 0 ? budget / weighted : 0;
    const over = layers.filter((l) => !dense.has(l.name) && eps * scale(l) > 1);
    if (over.length === 0) return new Map(layers.map((l) => [l.name, dense.has(l.name) ? 1 : eps * scale(l)]));
    for (const l of over) dense.add(l.name);
  }
}

/** A random mask with round(density·size) ones per layer, drawn from `rng` (layer by layer, in order). */
export function randomMaskAt(layers: readonly SparseLayer[], densities: ReadonlyMap<string, number>, rng: Rng): Mask {
  return new Map(layers.map((l) => {
    const n = l.shape.reduce((a, b) => a * b, 1);
    const keep = Math.max(1, Math.min(n, Math.round(densities.get(l.name)! * n)));
    const perm = rng.permutation(n);
    const out = new Float32Array(n);
    for (let k = 0; k < keep; k++) out[perm[k]] = 1;
    return [l.name, out];
  }));
}
