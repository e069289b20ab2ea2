"""PyTorch side of the embed benchmark: the same ViT-B/16-sized SigLIP-shaped tower as ctl's generated `vit-b16`
(Conv patchify, position embedding, 12 pre-LN blocks 768 wide with exact GELU, LayerNorm, mean pool, projection),
random weights, on the same images, decode included: PIL decode, squash resize to 224 (bicubic), scale to [-1, 1].

    python3 bench/embed/torch_vit.py IMAGE_DIR [--batch 8] [--threads 2] [--limit N] [--device cpu|cuda]

On cuda one batch of zeros runs first (untimed), so CUDA's start-up is not counted; decoding stays on the CPU.
Prints one JSON line: {"images": n, "seconds": s, "images_per_s": r, "torch": version, "threads": t, "device": d,
"blas": the library torch's matrix products ran on, "blas_kind": openblas, mkl, cuda or null}, the BLAS found as
bench/train/torch_bench.py finds it.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'train'))
from torch_bench import blas_kind, blas_library  # noqa: E402


class VisionTower(nn.Module):
    def __init__(self, dim=768, layers=12, heads=12, mlp=3072, patch=16, img=224, proj=768):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.pos = nn.Parameter(torch.randn(1, (img // patch) ** 2, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True, layer_norm_eps=1e-6)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, proj)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.proj(self.norm(self.blocks(x)).mean(1))


def load(path, size=224):
    img = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    return (np.asarray(img, dtype=np.float32) / 255.0 - 0.5) / 0.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image_dir")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormal floats would slow the baseline for nothing
    torch.manual_seed(0)
    model = VisionTower().eval().to(device)
    files = sorted(os.path.join(args.image_dir, f) for f in os.listdir(args.image_dir))
    if args.limit:
        files = files[: args.limit]

    with torch.inference_mode():
        if device.type == "cuda":
            model(torch.zeros(args.batch, 3, 224, 224, device=device))
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(files), args.batch):
            batch = np.stack([load(f) for f in files[i:i + args.batch]]).transpose(0, 3, 1, 2)
            out = F.normalize(model(torch.from_numpy(np.ascontiguousarray(batch)).to(device)), dim=-1)
            assert torch.isfinite(out).all()
        seconds = time.perf_counter() - start
    blas = "cuBLAS" if device.type == "cuda" else blas_library()
    print(json.dumps({"images": len(files), "seconds": seconds, "images_per_s": len(files) / seconds,
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device,
                      "blas": blas, "blas_kind": "cuda" if device.type == "cuda" else blas_kind(blas)}), flush=True)


if __name__ == "__main__":
    main()
