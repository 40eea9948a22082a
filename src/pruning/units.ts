import { LthError, check } from '../core/errors.js';
import { rowLength, unitChain, zeroInputsFrom, zeroUnit, type UnitLayer } from '../nn/compact.js';
import type { Model } from '../nn/model.js';
import { copyMask, smallestRemainingPooled, type Mask } from './mask.js';
import { pruneCount, rateOf, trainedWeights, type PruningContext, type Strategy } from './strategy.js';

/**
 * Structured pruning by L1 norm: in each hidden layer of `kind` (Linear: neurons; Conv2d:
 * output channels), the remaining units whose rows of the trained weights under the current
 * mask have the smallest L1 norm, as many as the layer's rate of its remaining units
 * (rounded as pruneCount). A unit goes with everything it touches: its row of the mask and
 * the next layer's inputs that come from it (nn/compact.ts), so the mask stays structured
 * and the network compacts. The output layer's units (the classes) stay, and every layer
 * keeps at least one unit. Scores are read from ctx.mask, before this round's removals, so
 * each layer's choice does not depend on the others'.
 */
export function pruneUnitsByL1(ctx: PruningContext, kind: UnitLayer['kind'], strategy: string): Mask {
  const trained = trainedWeights(ctx, strategy);
  const chain = prunableUnits(ctx.model(), kind, strategy);
  const out = copyMask(ctx.mask);
  chain.forEach((layer, i) => {
    if (layer.kind !== kind || layer.output) return;
    const mask = ctx.mask.get(layer.weight), w = trained.get(layer.weight);
    check(mask !== undefined && w !== undefined, `${strategy}: mask or trained weights lack '${layer.weight}'`);
    const next = chain[i + 1];
    const nextMask = out.get(next.weight);
    check(nextMask !== undefined, `${strategy}: no mask for '${next.weight}'`);
    for (const j of lowestUnits(ctx, layer, unitL1(w, mask, layer), unitsAlive(mask, layer))) {
      zeroUnit(out.get(layer.weight)!, layer, j);
      zeroInputsFrom(nextMask, next, j);
    }
  });
  return out;
}

/**
 * Network Slimming's pruning (Liu et al., ICCV 2017): the output channels of hidden
 * convolutions followed by batch norm whose trained scale |γ| is smallest, with one
 * threshold across those layers (not in --ignore), as many as the largest rate among them
 * of their remaining channels (rounded as pruneCount). A layer keeps at least one channel
 * (a choice that would take its last one takes one fewer). A channel goes with the next
 * layer's inputs that come from it, as in pruneUnitsByL1, so the network compacts. Other
 * layers keep their units.
 */
export function pruneChannelsByBnScale(ctx: PruningContext, strategy: string): Mask {
  const trained = trainedWeights(ctx, strategy);
  const chain = bnScaledChannels(ctx.model(), strategy);
  const pooled = chain.map((layer, i) => ({ layer, i })).filter(({ layer }) => bnScaled(layer) && !ctx.ignore.includes(layer.weight));
  check(pooled.length > 0, `${strategy}: every convolution followed by batch norm is ignored`);
  const alive = pooled.map(({ layer }) => {
    const m = ctx.mask.get(layer.weight);
    check(m !== undefined, `${strategy}: no mask for '${layer.weight}'`);
    return unitsAlive(m, layer);
  });
  const scores = pooled.map(({ layer }) => {
    const gamma = trained.get(`${layer.norm}.weight`);
    check(gamma !== undefined && gamma.length === layer.units, `${strategy}: trained weights lack '${layer.norm}.weight'`);
    return Float32Array.from(gamma, (g) => (ctx.invert ? -Math.abs(g) : Math.abs(g)));
  });
  const remaining = alive.reduce((a, v) => a + v.reduce((b, x) => b + x, 0), 0);
  const count = pruneCount(Math.max(...pooled.map(({ layer }) => rateOf(ctx, layer.weight))), remaining);
  const picked = smallestRemainingPooled(scores, alive, count, true);
  const out = copyMask(ctx.mask);
  pooled.forEach(({ layer, i }, k) => {
    let drop = picked[k];
    const left = alive[k].reduce((a, v) => a + v, 0);
    if (drop.length >= left) {
      // Keep the best-scored of the layer's channels: a layer with none would cut the network in two.
      let best = drop[0];
      for (const j of drop) if (scores[k][j] > scores[k][best]) best = j;
      drop = drop.filter((j) => j !== best);
    }
    const next = chain[i + 1];
    const nextMask = out.get(next.weight);
    check(nextMask !== undefined, `${strategy}: no mask for '${next.weight}'`);
    for (const j of drop) {
      zeroUnit(out.get(layer.weight)!, layer, j);
      zeroInputsFrom(nextMask, next, j);
    }
  });
  return out;
}

/** A hidden convolution whose channels a batch norm scales. */
function bnScaled(layer: UnitLayer): boolean {
  return layer.kind === 'conv2d' && !layer.output && layer.norm !== undefined;
}

/** The chain of `model`, checked to have a hidden convolution followed by batch norm; a user error otherwise. */
export function bnScaledChannels(model: Model, strategy: string): UnitLayer[] {
  const chain = unitChain(model);
  if (!chain.some(bnScaled)) throw new LthError(`${strategy}: ${model.name} has no hidden convolution followed by batch norm to remove channels from`);
  return chain;
}

/**
 * The chain of `model` (nn/compact.ts), checked to have hidden layers of `kind` whose units
 * `strategy` can remove: a user error otherwise, which a lottery gives before it trains
 * anything (resolveLottery).
 */
export function prunableUnits(model: Model, kind: UnitLayer['kind'], strategy: string): UnitLayer[] {
  const chain = unitChain(model);
  if (!chain.some((l) => l.kind === kind && !l.output)) {
    throw new LthError(`${strategy}: ${model.name} has no hidden ${kind === 'linear' ? 'fully connected layer' : 'convolution'} to remove ${kind === 'linear' ? 'neurons' : 'channels'} from`);
  }
  return chain;
}

/** Checks that `model` has units for a structured `strategy` to remove (nothing to check for an unstructured one). */
export function checkStructured(strategy: Strategy, model: () => Model): void {
  if (strategy.structure === 'unstructured') return;
  if (strategy.checkModel) strategy.checkModel(model());
  else prunableUnits(model(), strategy.structure === 'channels' ? 'conv2d' : 'linear', strategy.name);
}

/** The L1 norm of each unit's row of w ⊙ mask. */
export function unitL1(w: Float32Array, mask: Float32Array, layer: UnitLayer): Float32Array {
  const len = rowLength(layer);
  const out = new Float32Array(layer.units);
  for (let r = 0; r < layer.units; r++) {
    let s = 0;
    for (let i = r * len; i < (r + 1) * len; i++) if (mask[i] !== 0) s += Math.abs(w[i]);
    out[r] = s;
  }
  return out;
}

/** 1 for each unit whose row of the mask keeps anything. */
export function unitsAlive(mask: Float32Array, layer: UnitLayer): Float32Array {
  const len = rowLength(layer);
  return Float32Array.from({ length: layer.units }, (_, r) => (mask.subarray(r * len, (r + 1) * len).some((v) => v !== 0) ? 1 : 0));
}

/**
 * The alive units to remove: the layer's rate of them, lowest scores first (ties by
 * position), or highest first for the inversion check (ctx.invert); never the last one.
 */
function lowestUnits(ctx: PruningContext, layer: UnitLayer, scores: Float32Array, alive: Float32Array): Int32Array {
  const remaining = alive.reduce((a, v) => a + v, 0);
  // A layer with no unit left would cut the network in two.
  const count = Math.max(0, Math.min(pruneCount(rateOf(ctx, layer.weight), remaining), remaining - 1));
  const ranked = ctx.invert ? scores.map((s) => -s) : scores;
  return smallestRemainingPooled([ranked], [alive], count, true)[0];
}
