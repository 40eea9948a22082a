import { Conv2d, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { Sequential } from '../nn/module.js';
import { BatchNorm2d, GlobalAvgPool2d } from '../nn/norm.js';
import { BasicBlock } from '../nn/residual.js';
import { ratesByKind, type ModelSpec } from './spec.js';

/**
 * ResNet-N for CIFAR-10 (He et al. 2016, §4.2) as open_lth's cifar_resnet_N: a 3×3
 * convolution to 16 channels with batch norm and ReLU (conv, bn), three stages of
 * D = (N - 2)/6 basic blocks at 16, 32 and 64 channels (blocks.0 .. blocks.3D-1; the first
 * block of stages 2 and 3 halves the resolution through a projection shortcut), global
 * average pooling and a fully connected layer to 10 classes (fc). Convolutions have no bias
 * (batch norm follows each); conv and fc weights are drawn Kaiming normal, batch norm starts
 * at γ = 1, β = 0 (PyTorch's defaults). Parameter and buffer names are PyTorch's for
 * open_lth's module tree, so state dicts interoperate.
 */
function resnet(name: string, depth: number, inChannels: number, width = 16): Model {
  const perStage = (depth - 2) / 6;
  const blocks: Array<[string, BasicBlock]> = [];
  let c = width;
  for (const [stage, filters] of [width, 2 * width, 4 * width].entries()) {
    for (let b = 0; b < perStage; b++) {
      blocks.push([String(blocks.length), new BasicBlock(c, filters, stage > 0 && b === 0)]);
      c = filters;
    }
  }
  return new Model(name, [
    ['conv', new Conv2d(inChannels, width, 3, { padding: 1, bias: false, init: 'kaiming' })],
    ['bn', new BatchNorm2d(width, 'relu')],
    ['blocks', new Sequential(blocks)],
    ['pool', new GlobalAvgPool2d()],
    ['fc', new Linear(c, 10, 'none', 'kaiming')],
  ]);
}

const RESNETS = [
  { depth: 20, weights: '272,474 parameters (270,896 prunable weights)' },
  { depth: 56, weights: '855,770 parameters (851,504 prunable weights)' },
] as const;

/** cifar_resnet_20 and cifar_resnet_56, trained as He et al. and open_lth do. */
export function cifarResnetSpecs(): ModelSpec[] {
  return RESNETS.map((net) => resnetSpec(net, [3, 32, 32]));
}

/** One of them for images of `input` shape: the stem takes its channels; global pooling takes any size. */
function resnetSpec(net: (typeof RESNETS)[number], input: readonly number[]): ModelSpec {
  const name = `cifar_resnet_${net.depth}`;
  return {
    name,
    description: `ResNet-${net.depth} (He et al. 2016): conv-BN-ReLU stem, 3 stages of ${(net.depth - 2) / 6} residual blocks at 16/32/64 channels, global average pooling, fc 64->10, for CIFAR-10 (${net.weights}; other image shapes too)`,
    training: {
      dataset: 'cifar10', steps: '160ep', batchSize: 128, optimizer: 'sgd', lr: 0.1,
      momentum: 0.9, weightDecay: 1e-4, lrSchedule: 'step:80ep,120ep', lrGamma: 0.1,
    },
    build: () => resnet(name, net.depth, input[0]),
    pruningRates: ratesByKind(0.2, 0.2),
    pruning: { strategy: 'magnitude_global', ignore: ['fc.weight'] },
    rateScope: 'all',
    input: [...input],
    forInput: (other) => resnetSpec(net, other),
  };
}
