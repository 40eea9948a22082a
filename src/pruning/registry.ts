import { LthError } from '../core/errors.js';
import { bnScale } from './strategies/bn-scale.js';
import { channelL1 } from './strategies/channel-l1.js';
import { grasp } from './strategies/grasp.js';
import { magnitudeGlobal } from './strategies/magnitude-global.js';
import { magnitudeInit } from './strategies/magnitude-init.js';
import { magnitudeLayerwise } from './strategies/magnitude-layerwise.js';
import { neuronL1 } from './strategies/neuron-l1.js';
import { randomLayerwise } from './strategies/random-layerwise.js';
import { snip } from './strategies/snip.js';
import { synflow } from './strategies/synflow.js';
import type { Strategy } from './strategy.js';

/** Every pruning strategy a user can name (--strategy): one file each under strategies/, one line here. */
const STRATEGIES: readonly Strategy[] = [
  magnitudeLayerwise,
  magnitudeGlobal,
  randomLayerwise,
  magnitudeInit,
  snip,
  synflow,
  grasp,
  neuronL1,
  channelL1,
  bnScale,
];

export function strategyNames(): string[] {
  return STRATEGIES.map((s) => s.name);
}

export function getStrategy(name: string): Strategy {
  const found = STRATEGIES.find((s) => s.name === name);
  if (!found) throw new LthError(`Unknown pruning strategy '${name}'. Known: ${strategyNames().join(', ')}`);
  return found;
}
