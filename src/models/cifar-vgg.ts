import { Conv2d, Linear, MaxPool2d } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Sequential, type Module } from '../nn/module.js';
import { BatchNorm2d, GlobalAvgPool2d } from '../nn/norm.js';
import { ratesByKind, type ModelSpec } from './spec.js';

/** Channels of each 3×3 conv-BN-ReLU layer, 'M' a 2×2 max pooling: open_lth's plans. */
const PLANS = {
  11: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512],
  16: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512],
  19: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512],
} as const satisfies Record<number, ReadonlyArray<number | 'M'>>;

/**
 * VGG-N for CIFAR-10 as open_lth's cifar_vgg_N: layers.i is a 3×3 convolution (padding 1,
 * with bias) then batch norm and ReLU (layers.i.conv, layers.i.bn), or a 2×2 max pooling at
 * each 'M' of the plan (its index counts, as in PyTorch's nn.Sequential); then average
 * pooling of the 2×2 map left (global average pooling here, which is the same at 32×32 and
 * lets other image sizes through) and fc 512->10. Kaiming normal weights, zero biases,
 * batch norm at γ = 1, β = 0.
 */
function vgg(name: string, plan: ReadonlyArray<number | 'M'>, inChannels: number): Model {
  let c = inChannels;
  const layers: Array<[string, Module]> = plan.map((spec, i) => {
    if (spec === 'M') return [String(i), new MaxPool2d(2)];
    const layer = new Sequential([
      ['conv', new Conv2d(c, spec, 3, { padding: 1, init: 'kaiming' })],
      ['bn', new BatchNorm2d(spec, 'relu')],
    ]);
    c = spec;
    return [String(i), layer];
  });
  return new Model(name, [
    ['layers', new Sequential(layers)],
    ['pool', new GlobalAvgPool2d()],
    ['fc', new Linear(c, 10, 'none', 'kaiming')],
  ]);
}

const VGGS = [
  { depth: 11, weights: '9,231,114 parameters' },
  { depth: 16, weights: '14,728,266 parameters' },
  { depth: 19, weights: '20,040,522 parameters' },
] as const;

/** cifar_vgg_11, cifar_vgg_16 and cifar_vgg_19 with the literature's training (weight decay 5e-4). */
export function cifarVggSpecs(): ModelSpec[] {
  return VGGS.map((net) => vggSpec(net, [3, 32, 32]));
}

/** One of them for images of `input` shape (at least 16×16, so that four poolings leave a pixel). */
function vggSpec(net: (typeof VGGS)[number], input: readonly number[]): ModelSpec {
  const name = `cifar_vgg_${net.depth}`;
  const plan = PLANS[net.depth];
  return {
    name,
    description: `VGG-${net.depth} with batch norm: ${plan.join(',')} (3x3 conv-BN-ReLU, M = 2x2 max pooling), global average pooling, fc 512->10, for CIFAR-10 (${net.weights}; other image shapes of at least 16x16 too)`,
    training: {
      dataset: 'cifar10', steps: '160ep', batchSize: 128, optimizer: 'sgd', lr: 0.1,
      momentum: 0.9, weightDecay: 5e-4, lrSchedule: 'step:80ep,120ep', lrGamma: 0.1,
    },
    build: () => vgg(name, plan, input[0]),
    pruningRates: ratesByKind(0.2, 0.2),
    pruning: { strategy: 'magnitude_global', ignore: ['fc.weight'] },
    rateScope: 'all',
    input: [...input],
    forInput: (other) => vggSpec(net, other),
  };
}
