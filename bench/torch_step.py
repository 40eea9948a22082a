"""The timing every PyTorch benchmark script shares: a training step on a fixed batch, timed
after a warm-up, and one JSON line on stdout (median step time, each step's time, PyTorch's
version, threads and BLAS) for bench/torch.ts to read.

With --serve the script stays up after the warm-up, so that a bench can time PyTorch's
steps in turn with its own: it prints its JSON line with no steps timed yet, then, for each
line k read from stdin, times k more steps and prints their times as a JSON list; it ends
at the end of stdin."""
import argparse
import json
import platform
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def step_arguments(doc, models, default_model, batch, lr):
    """The arguments every step benchmark takes (the script's own defaults for batch and lr)."""
    ap = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    ap.add_argument('--model', choices=models, default=default_model)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--batch', type=int, default=batch)
    ap.add_argument('--lr', type=float, default=lr)
    ap.add_argument('--serve', action='store_true', help='after the warm-up, time k steps for each line k on stdin')
    return ap


def parse_step_arguments(ap):
    """Parses the arguments and fixes PyTorch's threads and seed from them (seed 0 for the weights)."""
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return a


def random_cifar_batch(batch):
    """A batch of standard-normal 3×32×32 images with uniform labels of 10 classes, from seed 1."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)


def time_training_steps(model, opt, x, y, name, batch, warmup, steps, serve=False):
    """Times `steps` steps of cross-entropy on (x, y) with `opt` after `warmup` untimed ones and prints the JSON line
    (with `serve`, none timed before it: then k steps for each line k on stdin, their times printed as a list)."""

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    def timed(k, progress):
        times = []
        for i in range(k):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
            if progress:
                print(f'torch {name} step {i + 1}/{k}: {times[-1] * 1000:.1f} ms', file=sys.stderr)
        return times

    for _ in range(warmup):
        step()
    times = [] if serve else timed(steps, True)
    blas = re.search(r'BLAS_INFO=([^,\s]+)', torch.__config__.show())
    print(json.dumps({
        'torch': torch.__version__,
        'model': name,
        'threads': torch.get_num_threads(),
        'batch': batch,
        'stepSeconds': statistics.median(times) if times else None,
        'stepRunSeconds': times,
        'mkldnn': torch.backends.mkldnn.is_available(),
        'blas': blas.group(1) if blas else None,
        'python': platform.python_version(),
    }), flush=True)
    if serve:
        for line in sys.stdin:
            print(json.dumps(timed(int(line), False)), flush=True)
