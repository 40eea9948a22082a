import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { ratesByKind, type ModelSpec } from './spec.js';

function mlp(name: string, sizes: number[]): Model {
  const layers: Array<[string, Linear]> = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const last = i + 2 === sizes.length;
    layers.push([`fc${i + 1}`, new Linear(sizes[i], sizes[i + 1], last ? 'none' : 'relu')]);
  }
  return new Model(name, layers);
}

/** LeNet-300-100, the paper's MNIST network. */
export const lenet300100: ModelSpec = {
  name: 'lenet_300_100',
  description: 'LeNet-300-100: fully connected 784-300-100-10 with ReLU (266,200 weights)',
  training: { dataset: 'mnist', steps: '50000it', batchSize: 60, optimizer: 'adam', lr: 1.2e-3 },
  build: () => mlp('lenet_300_100', [784, 300, 100, 10]),
  hiddenWidths: [300, 100],
  withWidths: (w) => mlp('lenet_300_100', [784, ...w, 10]),
  pruningRates: ratesByKind(0.2, 0.2),
};
