"""The same full-catalog ranking as src/eval/rank.ts, in NumPy or PyTorch, for bench/eval/run.mjs.

Per block of scene rows: scores = scenes @ products.T; top-10 per scene; for every true pair of the block, its
filtered pessimistic rank = 1 + #{ c : c not a positive of the scene, score >= score(target) }.

Usage: python3 baseline.py numpy|torch DATA_DIR OUT_DIR [--block 512] [--threads 2]
DATA_DIR holds meta.json, scenes.f32, products.f32, targets_offsets.i32, targets_ids.i32 (per scene row, its
true products; they are also the filtered ones). Writes ranks.i32 and top10.i32 to OUT_DIR and one JSON line
(engine, versions, seconds, of which in the matrix product) on stdout.
"""
import json
import os
import sys
import time

import numpy as np


def load(data_dir):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    dim = meta["dim"]
    f32 = lambda name: np.fromfile(os.path.join(data_dir, name), dtype=np.float32).reshape(-1, dim)
    i32 = lambda name: np.fromfile(os.path.join(data_dir, name), dtype=np.int32)
    return f32("scenes.f32"), f32("products.f32"), i32("targets_offsets.i32"), i32("targets_ids.i32")


def pair_layout(offsets, ids, start, stop):
    """For the scene rows start..stop: each pair's row (block-relative), target, and its row's positives padded
    with -1 to the largest count."""
    counts = np.diff(offsets[start : stop + 1])
    rows = np.repeat(np.arange(stop - start), counts)
    targets = ids[offsets[start] : offsets[stop]].astype(np.int64)
    width = max(1, int(counts.max(initial=1)))
    positives = np.full((stop - start, width), -1, dtype=np.int64)
    for r in range(stop - start):
        positives[r, : counts[r]] = ids[offsets[start + r] : offsets[start + r + 1]]
    return rows, targets, positives[rows]


class Clock:
    """Seconds spent in the matrix product alone, to show where the rest of the time goes."""

    matmul = 0.0


def run_numpy(scenes, products, offsets, ids, block):
    products_t = np.ascontiguousarray(products.T)
    ranks = np.empty(len(ids), dtype=np.int32)
    top10 = np.empty((len(scenes), 10), dtype=np.int32)
    for start in range(0, len(scenes), block):
        stop = min(len(scenes), start + block)
        t = time.perf_counter()
        scores = scenes[start:stop] @ products_t
        Clock.matmul += time.perf_counter() - t
        part = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        top10[start:stop] = np.take_along_axis(part, order, 1)
        rows, targets, positives = pair_layout(offsets, ids, start, stop)
        target_scores = scores[rows, targets]
        # count_nonzero: NumPy's fastest count of a boolean matrix's rows (bench/eval/README.md: fairness).
        ahead = np.count_nonzero(scores[rows] >= target_scores[:, None], axis=1)
        pos_scores = np.where(positives >= 0, scores[rows[:, None], np.maximum(positives, 0)], -np.inf)
        ahead_positives = np.count_nonzero(pos_scores >= target_scores[:, None], axis=1)  # includes the target
        ranks[offsets[start] : offsets[stop]] = 1 + ahead - ahead_positives
    return ranks, top10


def run_torch(scenes, products, offsets, ids, block):
    import torch

    torch.set_flush_denormal(True)
    scenes_t, products_t = torch.from_numpy(scenes), torch.from_numpy(products)
    ranks = torch.empty(len(ids), dtype=torch.int32)
    top10 = torch.empty((len(scenes), 10), dtype=torch.int32)
    with torch.no_grad():
        for start in range(0, len(scenes), block):
            stop = min(len(scenes), start + block)
            t = time.perf_counter()
            scores = scenes_t[start:stop] @ products_t.T
            Clock.matmul += time.perf_counter() - t
            top10[start:stop] = torch.topk(scores, 10, dim=1).indices.int()
            rows, targets, positives = (torch.from_numpy(a) for a in pair_layout(offsets, ids, start, stop))
            target_scores = scores[rows, targets]
            # An int32 sum: PyTorch 1.13's default (int64) sum of a bool matrix is the slowest step otherwise.
            ahead = (scores[rows] >= target_scores[:, None]).sum(1, dtype=torch.int32)
            pos_scores = torch.where(positives >= 0, scores[rows[:, None], positives.clamp(min=0)], torch.tensor(-float("inf")))
            ahead_positives = (pos_scores >= target_scores[:, None]).sum(1, dtype=torch.int32)
            ranks[offsets[start] : offsets[stop]] = (1 + ahead - ahead_positives).int()
    return ranks.numpy(), top10.numpy()


def main():
    engine, data_dir, out_dir = sys.argv[1:4]
    opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
    block, threads = int(opts.get("--block", 512)), int(opts.get("--threads", 2))
    scenes, products, offsets, ids = load(data_dir)
    info = {"engine": engine, "numpy": np.__version__, "threads": threads, "block": block}
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
        info["torch"] = torch.__version__
        run = run_torch
    else:
        run = run_numpy
    run(scenes[:block], products, offsets[: block + 1], ids, block)  # warm-up: BLAS buffers, first-touch
    Clock.matmul = 0.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    ranks, top10 = run(scenes, products, offsets, ids, block)
    info["seconds"] = time.perf_counter() - t0
    info["cpu_seconds"] = time.process_time() - c0
    info["matmul_seconds"] = Clock.matmul
    ranks.astype(np.int32).tofile(os.path.join(out_dir, "ranks.i32"))
    top10.astype(np.int32).tofile(os.path.join(out_dir, "top10.i32"))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
