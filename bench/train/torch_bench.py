"""PyTorch side of bench/train/run.mjs: the training step (torch_two_tower.py) of the model, loss and optimizer
that script wrote to DATA_DIR/step.json (from configs/v1.json or v2.json), on the batches it wrote there; prints
one JSON line (samples/s, samples per CPU-second, step times early and late, versions, the BLAS library torch
loaded, threads, the device). Refuses (exit 3) to time a PyTorch whose BLAS is not OpenBLAS or MKL: on Debian,
python3-torch alone brings the reference BLAS (libblas3), several times slower, and a ratio against it says nothing.
With --device cuda the model, its optimizer state and the whole matrices live on the GPU (batches are gathered
there, as ctl's webgpu engine does), in strict fp32 (TF32 off: ctl's WebGPU kernels compute in fp32); exit 4 when
torch has no CUDA device.

Usage: python3 torch_bench.py DATA_DIR [--batch 256] [--warmup 5] [--first 5] [--steps 40] [--threads 2]
    [--device cpu|cuda]
DATA_DIR: step.json ({spec: the model section with inputDim and numCategories, loss, optimizer: the config's
sections, negatives: whether each row has an explicit negative}), scenes.f32 [rows, inputDim], products.f32
[products, inputDim], product_category.i32, row_product.i32, and per step `batch` training rows (rows.i32) and,
with negatives, as many negatives (negatives.i32). Warm-up runs the first `warmup` steps, then steps
first .. first + steps - 1 are timed.
"""
import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from torch_two_tower import from_spec, make_optimizer, train_step  # noqa: E402


class DlInfo(ctypes.Structure):
    _fields_ = [
        ('dli_fname', ctypes.c_char_p),
        ('dli_fbase', ctypes.c_void_p),
        ('dli_sname', ctypes.c_char_p),
        ('dli_saddr', ctypes.c_void_p),
    ]


def blas_library():
    """The shared object whose sgemm_ torch's own library binds to: the BLAS its matrix products run on. (Which
    BLAS files are mapped says less: Debian's liblapack.so.3 can map OpenBLAS beside a reference libblas.so.3.)"""
    with open('/proc/self/maps') as f:
        torch_cpu = next((line.split()[-1] for line in f if 'libtorch_cpu' in line), None)
    if torch_cpu is None:
        return None
    try:
        sgemm = ctypes.CDLL(torch_cpu).sgemm_
    except AttributeError:
        return None
    info = DlInfo()
    if not ctypes.CDLL(None).dladdr(ctypes.cast(sgemm, ctypes.c_void_p), ctypes.byref(info)):
        return None
    return os.path.realpath(info.dli_fname.decode())


def blas_kind(library):
    """'openblas' or 'mkl' (linked into torch's own library in PyPI wheels), else None."""
    if library and 'openblas' in library.lower():
        return 'openblas'
    if (library and 'mkl' in library.lower()) or torch.backends.mkl.is_available():
        return 'mkl'
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('data')
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--first', type=int, default=5)
    parser.add_argument('--steps', type=int, default=40)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))
    device = torch.device(args.device)
    if args.device == 'cuda':
        if not torch.cuda.is_available():
            print(f'torch_bench.py: --device cuda, but torch {torch.__version__} finds no CUDA device', file=sys.stderr)
            sys.exit(4)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        library, kind, device_name = 'cuBLAS', 'cuda', torch.cuda.get_device_name()
    else:
        library, device_name = blas_library(), 'cpu'
        kind = blas_kind(library)
    if kind is None:
        print(
            f"torch_bench.py: refusing to time PyTorch on {library or 'an unknown BLAS'}: not OpenBLAS or MKL "
            '(a reference BLAS is several times slower, so a ratio against it says nothing). On Debian: '
            'apt-get install libopenblas0-pthread, and check update-alternatives --display '
            'libblas.so.3-x86_64-linux-gnu',
            file=sys.stderr,
        )
        sys.exit(3)
    # Denormal floats make every op much slower; a fair baseline flushes them (wasm cannot, so ctl flushes by hand).
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    with open(os.path.join(args.data, 'step.json')) as f:
        config = json.load(f)
    dim = config['spec']['inputDim']
    load = lambda name, dtype: torch.from_numpy(np.fromfile(os.path.join(args.data, name), dtype=dtype)).to(device)
    scenes = load('scenes.f32', np.float32).reshape(-1, dim)
    products = load('products.f32', np.float32).reshape(-1, dim)
    category = load('product_category.i32', np.int32).long()
    row_product = load('row_product.i32', np.int32).long()
    rows = load('rows.i32', np.int32).long().reshape(-1, args.batch)
    negatives = load('negatives.i32', np.int32).long().reshape(-1, args.batch) if config['negatives'] else None

    model = from_spec(config['spec']).to(device)
    model.train()
    optimizer = make_optimizer(model, config['optimizer'])
    loss, grad_clip = config['loss'], config['optimizer']['gradClip']

    def batch(step):
        r = rows[step]
        p = row_product[r]
        if negatives is None:
            return scenes[r], products[p], category[p]
        n = negatives[step]
        return scenes[r], products[p], category[p], products[n], category[n]

    for step in range(args.warmup):
        train_step(model, optimizer, loss, grad_clip, *batch(step))
    times = []
    cpu_start = time.process_time()
    for step in range(args.first, args.first + args.steps):
        b = batch(step)
        start = time.perf_counter()
        train_step(model, optimizer, loss, grad_clip, *b)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    quarter = max(1, len(times) // 4)
    print(json.dumps({
        'samples_per_sec': args.batch * len(times) / sum(times),
        'samples_per_cpu_sec': args.batch * len(times) / cpu,
        'step_ms_first_quarter': 1000 * sum(times[:quarter]) / quarter,
        'step_ms_last_quarter': 1000 * sum(times[-quarter:]) / quarter,
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'blas': library,
        'blas_kind': kind,
        'device': device_name,
    }))


if __name__ == '__main__':
    main()
