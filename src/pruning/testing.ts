/**
 * A pruning context for tests: the trained weights, mask and rates a strategy reads, with
 * layers described from the mask (each a flat 'linear' weight, the last one the output),
 * and a model and data sampler that are not there (strategies that need them get a
 * context of their own).
 */
import { Rng } from '../core/rng.js';
import type { StateDict } from '../nn/model.js';
import type { Mask } from './mask.js';
import type { PruningContext } from './strategy.js';

export function testContext(opts: {
  rates: ReadonlyMap<string, number>; trained: StateDict | null; mask: Mask; theta0?: StateDict; ignore?: readonly string[]; seed?: number; level?: number;
}): PruningContext {
  const names = [...opts.mask.keys()];
  return {
    layers: names.map((name, i) => ({ name, kind: 'linear', shape: [opts.mask.get(name)!.length], output: i === names.length - 1 })),
    theta0: opts.theta0 ?? opts.trained ?? new Map(),
    trained: opts.trained,
    mask: opts.mask,
    rates: opts.rates,
    ignore: opts.ignore ?? [],
    rng: new Rng(opts.seed ?? 0, 'prune', opts.level ?? 1),
    model: () => { throw new Error('testContext: no model'); },
    sample: () => { throw new Error('testContext: no data'); },
  };
}
