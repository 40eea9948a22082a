import { check } from '../core/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Conv2d } from './layers.js';
import { Sequential, Module, type ModuleDesc } from './module.js';
import { BatchNorm2d } from './norm.js';

/**
 * The basic residual block of He et al. (2016) for CIFAR, as open_lth's cifar_resnet builds
 * it: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3×3 convolutions without bias
 * (conv1 at stride 2 when the block downsamples). The shortcut is the identity (an empty
 * Sequential, as PyTorch's) or, when the block downsamples or changes the channel count,
 * a projection: a 1×1 convolution (stride 2 when downsampling) and batch norm, named
 * shortcut.0 and shortcut.1. Parameter names follow: conv1.weight, bn1.weight, ...,
 * shortcut.0.weight, shortcut.1.running_mean.
 *
 * Its forward composes its children itself (not a chain); a program that computes its
 * convolutions otherwise (sparse) runs it through forwardWith.
 */
export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly shortcut: Sequential;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly downsample: boolean) {
    super();
    check(Number.isInteger(inChannels) && inChannels >= 1 && Number.isInteger(outChannels) && outChannels >= 1,
      `BasicBlock: channel counts must be positive integers, got ${inChannels} and ${outChannels}`);
    const stride = downsample ? 2 : 1;
    this.conv1 = this.registerChild('conv1', new Conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false, init: 'kaiming' }));
    this.bn1 = this.registerChild('bn1', new BatchNorm2d(outChannels, 'relu'));
    this.conv2 = this.registerChild('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1, bias: false, init: 'kaiming' }));
    this.bn2 = this.registerChild('bn2', new BatchNorm2d(outChannels));
    const project = downsample || inChannels !== outChannels;
    this.shortcut = this.registerChild('shortcut', new Sequential(project ? [
      ['0', new Conv2d(inChannels, outChannels, 1, { stride, bias: false, init: 'kaiming' })],
      ['1', new BatchNorm2d(outChannels)],
    ] : []));
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, (t) => this.conv1.forward(t), (t) => this.conv2.forward(t));
  }

  /** The block with conv1 and conv2 computed by the given functions (a program's sparse convolutions). */
  forwardWith(x: Tensor, conv1: (x: Tensor) => Tensor, conv2: (x: Tensor) => Tensor): Tensor {
    const main = conv2(this.bn1.forward(conv1(x)));
    // bn2, the addition and the ReLU in one pass (the same rounding as the three apart).
    return this.bn2.forwardResidual(main, this.shortcut.forward(x), 'relu');
  }

  describe(): ModuleDesc {
    return { type: 'basic_block', in: this.inChannels, out: this.outChannels, downsample: this.downsample };
  }
}
