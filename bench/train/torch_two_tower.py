"""The reference two-tower models in PyTorch, with the state_dict names and layouts `ctl train` checkpoints use
(see src/model/two-tower.ts), so a checkpoint's model.safetensors loads with `load_state_dict(strict=True)`:

    from torch_two_tower import from_safetensors
    model = from_safetensors('workdir/runs/v2/checkpoints/best')

Also the training step `ctl train` runs (symmetric InfoNCE + weighted triplet on cosine distance, AdamW, global
grad-norm clip), for bench/train/run.mjs.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    """x -> norm2(x + Dropout(fc2(Dropout(GELU(norm1(fc1(x)))))))"""

    def __init__(self, dim, dropout):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.fc2 = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = self.dropout(F.gelu(self.norm1(self.fc1(x))))
        return self.norm2(x + self.dropout(self.fc2(h)))


class TowerV2(nn.Module):
    def __init__(self, in_dim, hidden, out, blocks, dropout):
        super().__init__()
        self.input = nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout))
        self.blocks = nn.ModuleList([ResidualBlock(hidden, dropout) for _ in range(blocks)])
        self.output = nn.Linear(hidden, out)

    def forward(self, x):
        h = self.input(x)
        for block in self.blocks:
            h = block(h)
        return self.output(h)


def tower_v1(in_dim, hidden, out, dropout):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class TwoTower(nn.Module):
    """arch 'v1' (MLP towers, no category) or 'v2' (residual towers, category embedding on the product side)."""

    def __init__(self, arch, input_dim, num_categories, hidden, out, blocks=2, dropout=0.1, category_dim=64,
                 normalize=True, temperature=0.07, temperature_min=0.01, temperature_max=1.0, learnable_temperature=True):
        super().__init__()
        self.arch, self.normalize = arch, normalize
        self.temperature_range = (temperature_min, temperature_max)
        self.category_dim = category_dim if arch == 'v2' else 0
        if arch == 'v1':
            self.scene_encoder = tower_v1(input_dim, hidden, out, dropout)
            self.product_encoder = tower_v1(input_dim, hidden, out, dropout)
        else:
            self.scene_encoder = TowerV2(input_dim, hidden, out, blocks, dropout)
            self.product_encoder = TowerV2(input_dim + self.category_dim, hidden, out, blocks, dropout)
        if self.category_dim > 0:
            self.category_embedding = nn.Embedding(num_categories, self.category_dim)
        if learnable_temperature:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        else:
            self.register_buffer('fixed_temperature', torch.tensor(temperature), persistent=False)

    def _out(self, h):
        return F.normalize(h, dim=-1) if self.normalize else h

    def encode_scenes(self, x):
        return self._out(self.scene_encoder(x))

    def encode_products(self, x, categories=None):
        if self.category_dim > 0:
            x = torch.cat([x, self.category_embedding(categories)], dim=-1)
        return self._out(self.product_encoder(x))

    def temperature(self):
        if hasattr(self, 'log_temperature'):
            return self.log_temperature.exp().clamp(*self.temperature_range)
        return self.fixed_temperature


def read_safetensors(path):
    """{name: tensor} from a safetensors file (F32 / I32), with the standard library and torch only."""
    with open(path, 'rb') as f:
        (length,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    header.pop('__metadata__', None)
    dtypes = {'F32': torch.float32, 'I32': torch.int32}
    out = {}
    for name, entry in header.items():
        begin, end = entry['data_offsets']
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtypes[entry['dtype']]).reshape(entry['shape'])
    return out


def from_safetensors(checkpoint_dir):
    """The model of a `ctl train` checkpoint folder (model.safetensors + state.json), in eval mode."""
    with open(os.path.join(checkpoint_dir, 'state.json')) as f:
        spec = json.load(f)['spec']
    t = spec['temperature']
    model = TwoTower(spec['arch'], spec['inputDim'], spec['numCategories'], spec['hidden'], spec['out'], spec['blocks'],
                     spec['dropout'], spec['categoryDim'], spec['normalize'], t['init'], t['min'], t['max'], t['learnable'])
    model.load_state_dict(read_safetensors(os.path.join(checkpoint_dir, 'model.safetensors')), strict=True)
    return model.eval()


def loss_fn(scenes, products, negatives, temperature, triplet_weight=0.5, margin=0.2):
    """Symmetric InfoNCE over the batch + weighted triplet loss on cosine distance (rows are unit vectors)."""
    logits = scenes @ products.T / temperature
    labels = torch.arange(len(scenes))
    infonce = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    positive = (scenes * products).sum(-1)
    negative = (scenes * negatives).sum(-1)
    triplet = F.relu(negative - positive + margin).mean()
    return infonce + triplet_weight * triplet


def train_step(model, optimizer, scenes, products, categories, negatives, negative_categories, clip=1.0):
    optimizer.zero_grad(set_to_none=True)
    s = model.encode_scenes(scenes)
    encoded = model.encode_products(torch.cat([products, negatives]), torch.cat([categories, negative_categories]))
    p, n = encoded[: len(scenes)], encoded[len(scenes):]
    loss = loss_fn(s, p, n, model.temperature())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()
