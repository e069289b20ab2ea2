"""PyTorch side of bench/train/run.mjs: the v2 model's training step (torch_two_tower.py) at a given batch size on
random unit-norm inputs; prints one JSON line (samples/s, step times early and late, versions, the BLAS library
torch loaded, threads).

Usage: python3 torch_bench.py [--batch 256] [--dim 768] [--steps 60] [--warmup 5] [--threads 2] [--categories 10]
"""
import argparse
import json
import sys
import time

import torch

sys.path.insert(0, __import__('os').path.dirname(__file__))
from torch_two_tower import TwoTower, train_step  # noqa: E402


def blas_library():
    """The BLAS shared object actually mapped into this process (Debian's libblas.so.3 is an alternatives link)."""
    import os
    with open('/proc/self/maps') as f:
        paths = {line.split()[-1] for line in f if 'blas' in line.lower() and '.so' in line}
    return sorted(os.path.realpath(p) for p in paths)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--dim', type=int, default=768)
    parser.add_argument('--steps', type=int, default=60)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--categories', type=int, default=10)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    # Denormal floats make every op 10-100x slower; a fair baseline flushes them (the design card).
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = TwoTower('v2', args.dim, args.categories, hidden=512, out=256, blocks=2, dropout=0.1, category_dim=64)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    pool = 4096
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, args.dim), dim=-1)
    scenes, products = unit(pool), unit(pool)
    categories = torch.randint(0, args.categories, (pool,))

    def batch():
        i = torch.randint(0, pool, (args.batch,))
        j = torch.randint(0, pool, (args.batch,))
        return scenes[i], products[i], categories[i], products[j], categories[j]

    for _ in range(args.warmup):
        train_step(model, optimizer, *batch())
    times = []
    cpu_start = time.process_time()
    for _ in range(args.steps):
        b = batch()
        start = time.perf_counter()
        train_step(model, optimizer, *b)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    total = sum(times)
    quarter = max(1, len(times) // 4)
    print(json.dumps({
        'samples_per_sec': args.batch * len(times) / total,
        'samples_per_cpu_sec': args.batch * len(times) / cpu,
        'step_ms_first_quarter': 1000 * sum(times[:quarter]) / quarter,
        'step_ms_last_quarter': 1000 * sum(times[-quarter:]) / quarter,
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'blas': blas_library(),
    }))


if __name__ == '__main__':
    main()
