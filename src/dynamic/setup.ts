import type { Backend, RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { countOnes } from '../pruning/mask.js';
import type { Model } from '../nn/model.js';
import type { SparseSetup } from '../training/run.js';
import { layerDensities, randomMaskAt } from './densities.js';
import { checkSparseUpdates, type SparseTrainHparams, type SparseUpdateHparams } from './hparams.js';
import { SparseTraining, type SparseTrainMethod } from './sparse-training.js';

/** The drop/regrow schedule of a training of `iterations` iterations. */
export function sparseSchedule(method: SparseTrainMethod, h: SparseUpdateHparams, iterations: number, seed: number, backend: Backend): SparseTraining {
  checkSparseUpdates(h, iterations);
  return new SparseTraining({ method, updateEvery: h.updateEvery, dropFraction: h.dropFraction, endAt: Math.floor(h.updateEnd * iterations), seed, backend });
}

/**
 * `lth train --sparse-train`: every prunable weight of the model starts from a random mask
 * at its layer's density (--density spread by --density-rule, drawn from (seed,
 * 'sparse_mask')), and the masks change by SET's or RigL's updates as it trains.
 */
export function sparseTrainingSetup(h: SparseTrainHparams, seed: number, context: RunContext): (model: Model, iterations: number) => SparseSetup {
  return (model, iterations) => {
    const layers = model.prunableLayers();
    const densities = layerDensities(layers, h.density, h.densityRule);
    const masks = randomMaskAt(layers, densities, new Rng(seed, 'sparse_mask'));
    const schedule = sparseSchedule(h.method, h, iterations, seed, context.backend);
    const kept = [...masks.values()].reduce((a, m) => a + countOnes(m), 0), total = [...masks.values()].reduce((a, m) => a + m.length, 0);
    return {
      masks, schedule, hparams: { ...h },
      report: () => ({
        // What the masks keep (a layer keeps at least one weight however low its share).
        method: h.method, density: kept / total, densityRule: h.densityRule,
        layerDensities: Object.fromEntries([...masks].map(([n, m]) => [n, countOnes(m) / m.length])),
        updateEvery: h.updateEvery, dropFraction: h.dropFraction, updateEnd: h.updateEnd, updates: schedule.updates, regrown: schedule.regrown,
      }),
    };
  };
}
