#!/usr/bin/env python3
"""Times one Conv-2 (or Conv-4/Conv-6) training step in PyTorch, as bench/conv.ts does in lth.

    /usr/bin/python3 bench/torch_conv2.py [--model conv2|conv4|conv6] [--threads 2]
                                          [--steps 10] [--warmup 3] [--batch 60]

A step: forward a fixed random batch [60, 3, 32, 32], mean cross-entropy, backward, Adam
(lr 2e-4, betas 0.9/0.999, eps 1e-8), zero_grad(set_to_none=True). The network is the paper's
(3x3 convs with padding 1 and ReLU, 2x2 max pooling after each pair, fc 256-256-10),
Glorot-normal weights and zero biases, float32, torch.set_num_threads(--threads). The figure
is the median of --steps individually timed steps after --warmup untimed ones.

Prints progress to stderr and one JSON object on stdout.
"""

import torch

from torch_step import parse_step_arguments, random_cifar_batch, step_arguments, time_training_steps

CHANNELS = {'conv2': [64, 64], 'conv4': [64, 64, 128, 128], 'conv6': [64, 64, 128, 128, 256, 256]}


def build(name):
    layers = []
    c, hw = 3, 32
    for i, out in enumerate(CHANNELS[name]):
        layers += [torch.nn.Conv2d(c, out, 3, padding=1), torch.nn.ReLU()]
        c = out
        if i % 2 == 1:
            layers.append(torch.nn.MaxPool2d(2))
            hw //= 2
    layers.append(torch.nn.Flatten())
    sizes = [c * hw * hw, 256, 256, 10]
    for i in range(3):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    for m in model:
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_normal_(m.weight)
            torch.nn.init.zeros_(m.bias)
    return model


def main():
    a = parse_step_arguments(step_arguments(__doc__, sorted(CHANNELS), 'conv2', 60, 2e-4))
    model = build(a.model)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    x, y = random_cifar_batch(a.batch)

    time_training_steps(model, opt, x, y, a.model, a.batch, a.warmup, a.steps, a.serve)


if __name__ == '__main__':
    main()
