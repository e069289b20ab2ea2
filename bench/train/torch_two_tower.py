"""The reference project's two-tower models in PyTorch, declared as the reference writes them (CTLModel for v1,
CTLModelV2 with nn.Sequential towers and ResidualBlock(net, norm) for v2), so a `ctl train` checkpoint's
model.safetensors loads with `load_state_dict(strict=True)` (see src/model/two-tower.ts):

    from torch_two_tower import from_safetensors
    model = from_safetensors('workdir/runs/v2/checkpoints/best')

Also the training step `ctl train` runs (weighted symmetric InfoNCE + weighted triplet on cosine distance when
there are explicit negatives, Adam or AdamW, global grad-norm clip when set), built from a training config's
sections, for bench/train/run.mjs.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    """x -> norm(x + net(x)), net = Linear, LayerNorm, GELU, Dropout, Linear, Dropout."""

    def __init__(self, dim, dropout=0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim),
            nn.LayerNorm(dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim, dim),
            nn.Dropout(dropout),
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x + self.net(x))


class CTLModel(nn.Module):
    """v1: MLP towers, no category, a raw learnable temperature (logits are divided by it, no clamp)."""

    def __init__(self, input_dim=512, hidden_dim=384, output_dim=128, dropout=0.2, temperature=0.07):
        super().__init__()

        def tower():
            return nn.Sequential(
                nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, output_dim)
            )

        self.scene_encoder = tower()
        self.product_encoder = tower()
        self.temperature = nn.Parameter(torch.tensor(temperature))

    def encode_scene(self, x):
        return F.normalize(self.scene_encoder(x), dim=-1)

    def encode_product(self, x):
        return F.normalize(self.product_encoder(x), dim=-1)

    def forward(self, scene, product):
        return self.encode_scene(scene) @ self.encode_product(product).T / self.temperature


class CTLModelV2(nn.Module):
    """v2: residual towers, a category embedding concatenated to the product input, a learnable log-temperature."""

    def __init__(self, input_dim=768, hidden_dim=512, output_dim=256, num_categories=10, category_dim=64,
                 num_blocks=2, dropout=0.1, temperature=0.07):
        super().__init__()
        self.category_embedding = nn.Embedding(num_categories, category_dim)

        def tower(in_dim):
            return nn.Sequential(
                nn.Linear(in_dim, hidden_dim),
                nn.LayerNorm(hidden_dim),
                nn.GELU(),
                nn.Dropout(dropout),
                *[ResidualBlock(hidden_dim, dropout) for _ in range(num_blocks)],
                nn.Linear(hidden_dim, output_dim),
            )

        self.scene_encoder = tower(input_dim)
        self.product_encoder = tower(input_dim + category_dim)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    @property
    def temperature(self):
        return self.log_temperature.exp().clamp(0.01, 1.0)

    def encode_scene(self, x):
        return F.normalize(self.scene_encoder(x), dim=-1)

    def encode_product(self, x, categories):
        return F.normalize(self.product_encoder(torch.cat([x, self.category_embedding(categories)], dim=-1)), dim=-1)

    def forward(self, scene, product, categories):
        return self.encode_scene(scene) @ self.encode_product(product, categories).T / self.temperature


def from_spec(spec):
    """The reference model of a `ctl train` model spec (the config's model section, inputDim, numCategories)."""
    t = spec['temperature']
    if spec['arch'] == 'v1':
        model = CTLModel(spec['inputDim'], spec['hidden'], spec['out'], spec['dropout'], t['init'])
    else:
        model = CTLModelV2(spec['inputDim'], spec['hidden'], spec['out'], spec['numCategories'],
                           spec['categoryDim'], spec['blocks'], spec['dropout'], t['init'])
    for name, parameter in model.named_parameters():
        if 'temperature' in name:
            parameter.requires_grad_(t['learnable'])
    return model


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
    """The reference model of a `ctl train` checkpoint folder (model.safetensors + state.json), in eval mode."""
    with open(os.path.join(checkpoint_dir, 'state.json')) as f:
        model = from_spec(json.load(f)['spec'])
    model.load_state_dict(read_safetensors(os.path.join(checkpoint_dir, 'model.safetensors')), strict=True)
    return model.eval()


def encode_products(model, x, categories):
    """The product tower of either class (v1 has no category input)."""
    return model.encode_product(x) if isinstance(model, CTLModel) else model.encode_product(x, categories)


def make_optimizer(model, optimizer):
    """torch.optim.Adam (L2 weight decay) or AdamW (decoupled) from a training config's optimizer section."""
    kind = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW}[optimizer['kind']]
    return kind([p for p in model.parameters() if p.requires_grad], lr=optimizer['lr'],
                betas=tuple(optimizer['betas']), eps=optimizer['eps'], weight_decay=optimizer['weightDecay'])


def loss_fn(scenes, products, negatives, temperature, loss):
    """Weighted symmetric InfoNCE over the batch + weighted triplet loss on cosine distance (rows are unit vectors)
    when there are negatives; `loss` is a training config's loss section."""
    logits = scenes @ products.T / temperature
    labels = torch.arange(len(scenes), device=scenes.device)
    infonce = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    total = loss['infonce'] * infonce
    if negatives is not None and loss['triplet'] > 0:
        positive = (scenes * products).sum(-1)
        negative = (scenes * negatives).sum(-1)
        total = total + loss['triplet'] * F.relu(negative - positive + loss['margin']).mean()
    return total


def train_step(model, optimizer, loss, grad_clip, scenes, products, categories, negatives=None,
               negative_categories=None):
    """One step; the product tower encodes the positives and the negatives (if any) in one pass."""
    optimizer.zero_grad(set_to_none=True)
    s = model.encode_scene(scenes)
    if negatives is None:
        p, n = encode_products(model, products, categories), None
    else:
        encoded = encode_products(model, torch.cat([products, negatives]),
                                  torch.cat([categories, negative_categories]))
        p, n = encoded[: len(scenes)], encoded[len(scenes):]
    value = loss_fn(s, p, n, model.temperature, loss)
    value.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value.item()
