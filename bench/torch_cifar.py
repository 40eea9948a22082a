#!/usr/bin/env python3
"""Times one training step of a CIFAR ResNet or VGG with batch norm in PyTorch, as bench/conv.ts does in lth.

    /usr/bin/python3 bench/torch_cifar.py [--model cifar_resnet_20] [--threads 2] [--steps 10]
                                          [--warmup 3] [--batch 128] [--lr 0.1] [--momentum 0.9]
                                          [--weight-decay 1e-4]

A step: forward a fixed random batch [B, 3, 32, 32] in training mode, mean cross-entropy,
backward, SGD (momentum, coupled weight decay), zero_grad(set_to_none=True). The networks are
open_lth's cifar_resnet_N / cifar_vgg_N as lth builds them (src/models/cifar-resnet.ts,
cifar-vgg.ts): bias-free 3x3 convs with batch norm and basic residual blocks (projection
shortcut where the shape changes), or VGG's conv-BN-ReLU layers and max pooling; global
average pooling; fc to 10. Kaiming-normal weights, float32, torch.set_num_threads(--threads).
The figure is the median of --steps individually timed steps after --warmup untimed ones.

Prints progress to stderr and one JSON object on stdout.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_step import parse_step_arguments, random_cifar_batch, step_arguments, time_training_steps

VGG_PLANS = {
    11: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512],
    16: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512],
    19: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512],
}


class Block(nn.Module):
    def __init__(self, f_in, f_out, downsample):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        project = downsample or f_in != f_out
        self.shortcut = nn.Sequential(nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out)) if project else nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        per_stage = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for stage, f in enumerate([16, 32, 64]):
            for b in range(per_stage):
                blocks.append(Block(c, f, stage > 0 and b == 0))
                c = f
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class VGG(nn.Module):
    def __init__(self, depth):
        super().__init__()
        layers, c = [], 3
        for spec in VGG_PLANS[depth]:
            if spec == 'M':
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, spec, 3, padding=1), nn.BatchNorm2d(spec), nn.ReLU()]
                c = spec
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.layers(x), 1).flatten(1))


def build(name):
    kind, depth = name.rsplit('_', 1)
    model = ResNet(int(depth)) if kind == 'cifar_resnet' else VGG(int(depth))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def main():
    ap = step_arguments(__doc__, ['cifar_resnet_20', 'cifar_resnet_56', 'cifar_vgg_11', 'cifar_vgg_16', 'cifar_vgg_19'], 'cifar_resnet_20', 128, 0.1)
    ap.add_argument('--momentum', type=float, default=0.9)
    ap.add_argument('--weight-decay', type=float, default=1e-4)
    a = parse_step_arguments(ap)
    model = build(a.model).train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    x, y = random_cifar_batch(a.batch)

    time_training_steps(model, opt, x, y, a.model, a.batch, a.warmup, a.steps, a.serve)


if __name__ == '__main__':
    main()
