import { check } from '../core/errors.js';
import type { Model } from '../nn/model.js';

/**
 * The masks a program applies: each named weight must be a prunable weight of the model
 * with the same number of entries. Pruned entries of the model's weights are set to zero.
 * A mask that prunes nothing still counts as a mask (a small masked layer may run on
 * sparse kernels so that its network takes the sparse-MLP program).
 */
export function applyMasks(model: Model, masks: ReadonlyMap<string, Float32Array> | undefined): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  if (!masks) return out;
  const prunable = new Set(model.prunableNames());
  for (const [name, mask] of masks) {
    check(prunable.has(name), () => `${model.name}: '${name}' is not a prunable weight (prunable: ${[...prunable].join(', ')})`);
    const t = model.parameter(name);
    check(mask.length === t.size, () => `${model.name}: mask '${name}' has ${mask.length} values, expected ${t.size}`);
    for (let i = 0; i < mask.length; i++) if (mask[i] === 0) t.data[i] = 0;
    out.set(name, mask);
  }
  return out;
}
