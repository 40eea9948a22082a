import { LthError } from '../core/errors.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';

/** What the paper trains a model with; used as the defaults of every run of it. */
export interface TrainingDefaults {
  readonly dataset: string;
  readonly steps: string;
  readonly batchSize: number;
  readonly optimizer: 'adam' | 'sgd';
  readonly lr: number;
}

export interface ModelSpec {
  readonly name: string;
  readonly description: string;
  readonly training: TrainingDefaults;
  build(): Model;
  /** The paper's per-round pruning rate of each prunable weight ('fc1.weight' -> 0.2). */
  pruningRates(model: Model): Map<string, number>;
}

/**
 * Rates by layer kind with the paper's convention that the output layer is pruned
 * at half the fully connected rate.
 */
function ratesByKind(fcRate: number): (model: Model) => Map<string, number> {
  return (model) => {
    const out = model.outputLayerName();
    return new Map(model.prunableNames().map((name) => [name, name === `${out}.weight` ? fcRate / 2 : fcRate]));
  };
}

function mlp(name: string, sizes: number[]): Model {
  const layers: Array<[string, Linear]> = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const last = i + 2 === sizes.length;
    layers.push([`fc${i + 1}`, new Linear(sizes[i], sizes[i + 1], last ? 'none' : 'relu')]);
  }
  return new Model(name, layers);
}

const MODELS: readonly ModelSpec[] = [
  {
    name: 'lenet_300_100',
    description: 'LeNet-300-100: fully connected 784-300-100-10 with ReLU (266,200 weights)',
    training: { dataset: 'mnist', steps: '50000it', batchSize: 60, optimizer: 'adam', lr: 1.2e-3 },
    build: () => mlp('lenet_300_100', [784, 300, 100, 10]),
    pruningRates: ratesByKind(0.2),
  },
];

export function modelNames(): string[] {
  return MODELS.map((m) => m.name);
}

export function getModel(name: string): ModelSpec {
  const spec = MODELS.find((m) => m.name === name);
  if (!spec) throw new LthError(`Unknown model '${name}'. Known: ${modelNames().join(', ')}`);
  return spec;
}
