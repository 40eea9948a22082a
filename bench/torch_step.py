"""The timing every PyTorch benchmark script shares: a training step on a fixed batch, timed
after a warm-up, and one JSON line on stdout (median step time, each step's time, PyTorch's
version, threads and BLAS) for bench/torch.ts to read."""
import json
import platform
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def time_training_steps(model, opt, x, y, name, batch, warmup, steps):
    """Times `steps` steps of cross-entropy on (x, y) with `opt` after `warmup` untimed ones and prints the JSON line."""

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times = []
    for i in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        print(f'torch {name} step {i + 1}/{steps}: {times[-1] * 1000:.1f} ms', file=sys.stderr)
    blas = re.search(r'BLAS_INFO=([^,\s]+)', torch.__config__.show())
    print(json.dumps({
        'torch': torch.__version__,
        'model': name,
        'threads': torch.get_num_threads(),
        'batch': batch,
        'stepSeconds': statistics.median(times),
        'stepRunSeconds': times,
        'mkldnn': torch.backends.mkldnn.is_available(),
        'blas': blas.group(1) if blas else None,
        'python': platform.python_version(),
    }))
