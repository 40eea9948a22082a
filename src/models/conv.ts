import { Conv2d, Dropout, Flatten, Linear, MaxPool2d } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { Module } from '../nn/module.js';
import { ratesByKind, type ModelSpec } from './spec.js';

/**
 * The paper's Conv-2/4/6 for 3×32×32 inputs: pairs of 3×3 convolutions (stride 1, same
 * padding, ReLU), each pair followed by 2×2 max pooling, then fully connected 256, 256,
 * 10 with ReLU between. Layers are named conv1..convK, pool1.., flatten, fc1..fc3 (and
 * dropout1, dropout2 after fc1 and fc2 when `dropout` > 0), so the parameters are
 * conv1.weight, conv1.bias, ..., fc3.bias whether or not there is dropout.
 */
function convNet(name: string, channels: readonly number[], dropout = 0, fcWidths: readonly number[] = [256, 256], input: readonly [number, number, number] = [3, 32, 32]): Model {
  const layers: Array<[string, Module]> = [];
  let [c, h, w] = input;
  channels.forEach((out, i) => {
    layers.push([`conv${i + 1}`, new Conv2d(c, out, 3, { padding: 'same', activation: 'relu' })]);
    c = out;
    if (i % 2 === 1) {
      layers.push([`pool${(i + 1) / 2}`, new MaxPool2d(2)]);
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
  });
  layers.push(['flatten', new Flatten()]);
  const fc = [c * h * w, ...fcWidths, 10];
  for (let i = 0; i + 1 < fc.length; i++) {
    const last = i + 2 === fc.length;
    layers.push([`fc${i + 1}`, new Linear(fc[i], fc[i + 1], last ? 'none' : 'relu')]);
    if (!last && dropout > 0) layers.push([`dropout${i + 1}`, new Dropout(dropout, i)]);
  }
  return new Model(name, layers);
}

/** Conv-2/4/6 and their dropout variants, with the paper's defaults (Figure 2 of v5), for CIFAR-10's 3×32×32 images. */
export function convSpecs(): ModelSpec[] {
  return CONV_NETS.flatMap((net) => [0, 0.5].map((dropout) => convSpec(net, dropout, [3, 32, 32])));
}

const CONV_NETS = [
  { n: 2, channels: [64, 64], steps: 20000, lr: 2e-4, convRate: 0.1, weights: '4,300,992 weights, 38,592 conv' },
  { n: 4, channels: [64, 64, 128, 128], steps: 25000, lr: 3e-4, convRate: 0.1, weights: '2,425,024 weights, 259,776 conv' },
  { n: 6, channels: [64, 64, 128, 128, 256, 256], steps: 30000, lr: 3e-4, convRate: 0.15, weights: '2,261,184 weights, 1,144,512 conv' },
] as const;

/** One of them for images of `input` shape: the same layers, fc1 sized for what the pooling leaves. */
function convSpec(net: (typeof CONV_NETS)[number], dropout: number, input: readonly number[]): ModelSpec {
  const convs = net.channels.map((ch, i) => (i % 2 ? `${ch},pool` : `${ch}`)).join(',');
  const name = dropout ? `conv${net.n}_dropout` : `conv${net.n}`;
  const shape = input as readonly [number, number, number];
  const cifar = input.join('x') === '3x32x32';
  return {
    name,
    description: `Conv-${net.n}${dropout ? ` with dropout ${dropout} after fc1 and fc2` : ''}: 3x3 convs ${convs}, fc 256,256,10, ReLU, for CIFAR-10 (${net.weights}; other image shapes too, e.g. 1x28x28 MNIST)`,
    training: { dataset: 'cifar10', steps: `${net.steps * (dropout ? 3 : 1)}it`, batchSize: 60, optimizer: 'adam', lr: net.lr },
    build: () => convNet(name, net.channels, dropout, [256, 256], shape),
    hiddenWidths: [...net.channels, 256, 256],
    withWidths: (w) => convNet(name, w.slice(0, net.channels.length), dropout, w.slice(net.channels.length), shape),
    pruningRates: ratesByKind(net.convRate, 0.2),
    input: cifar ? [3, 32, 32] : [...input],
    forInput: (other) => convSpec(net, dropout, other),
  };
}
