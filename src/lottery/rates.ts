import { getModel } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import { ratesForTarget } from '../pruning/rates.js';

/** What sets a lottery run's pruning rates (a LotteryHparams is one). */
export interface RateHparams {
  readonly training: { readonly model: string; readonly dataset: string };
  readonly levels: number;
  readonly rate?: number;
  readonly targetDensity?: number;
}

/** The per-round rate of every prunable weight: the model's, --rate, or derived from --target-density. */
export function pruningRates(h: RateHparams, model: Model): Map<string, number> {
  const spec = getModel(h.training.model, h.training.dataset);
  let rates = spec.pruningRates(model);
  if (h.rate !== undefined) {
    // --rate replaces the fully connected rate (output layer at half); conv layers keep theirs unless the model's --rate sets them too.
    const layers = new Map(model.prunableLayers().map((l) => [l.name, l]));
    const all = spec.rateScope === 'all';
    rates = new Map([...rates].map(([n, r]) => {
      const l = layers.get(n)!;
      return [n, l.kind === 'conv2d' && !all ? r : l.output ? h.rate! / 2 : h.rate!];
    }));
  }
  if (h.targetDensity !== undefined) {
    const sizes = new Map(model.namedParameters().map(([n, t]) => [n, t.size]));
    rates = ratesForTarget(rates, sizes, h.targetDensity, h.levels);
  }
  return rates;
}
