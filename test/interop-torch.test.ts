// Our torch.save reader and writer against the real PyTorch (Debian python3-torch): files torch writes are read
// tensor for tensor, files we write load in torch with the same tensors and metadata, and pickles that call
// anything but torch's tensor builders are refused without running them.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTorchCheckpoint } from '../src/model/torch/read-checkpoint.js';
import { PyOrderedDict } from '../src/model/torch/pickle-write.js';
import { encodeTorchCheckpoint, encodeTorchSave, type TorchValue } from '../src/model/torch/write-checkpoint.js';
import type { TorchTensor } from '../src/model/torch/tensor.js';
import { writeFile } from 'node:fs/promises';
import { ctl, runPython, skipWithoutTorch } from './torch-python.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctl-torch-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Every tensor of a file as {name: {shape, values}}, values as Python floats (exact for float32). */
const DUMP_TENSORS = String.raw`
def dump(sd):
    return {k: {"shape": list(v.shape), "values": v.detach().flatten().tolist()} for k, v in sd.items()}
`;

// The reference's v2 towers (Linear, LayerNorm, residual block, output) as nn.Sequential, and a category embedding.
const WRITE_REFERENCE = String.raw`
import json, sys, collections, numpy as np, torch, torch.nn as nn
torch.manual_seed(0)
class Block(nn.Module):
    def __init__(s, h):
        super().__init__(); s.net = nn.Sequential(nn.Linear(h, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(0.1), nn.Linear(h, h), nn.Dropout(0.1)); s.norm = nn.LayerNorm(h)
    def forward(s, x): return s.norm(x + s.net(x))
class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.category_embedding = nn.Embedding(5, 4)
        s.scene_encoder = nn.Sequential(nn.Linear(8, 6), nn.LayerNorm(6), nn.GELU(), nn.Dropout(0.1), Block(6), nn.Linear(6, 3))
        s.log_temperature = nn.Parameter(torch.tensor(0.07).log())
m = M()
sd = m.state_dict()
sd["strided"] = torch.randn(3, 5).t()  # a saved transpose: non-contiguous strides
opt = torch.optim.Adam(m.parameters())
m.scene_encoder(torch.randn(2, 8)).sum().backward(); opt.step()
torch.save({"epoch": 7, "model_state_dict": sd, "optimizer_state_dict": opt.state_dict(),
            "metrics": {"recall@10": np.float64(0.125), "loss": 2.5}, "num_categories": 5,
            "cat_to_idx": {"shoes": 0, "bags": 1, "hats": 2, "belts": 3, "tops": 4}}, sys.argv[1])
torch.save(m.state_dict(keep_vars=True), sys.argv[2])  # a bare state_dict of nn.Parameters
${DUMP_TENSORS}
print(json.dumps({"dict": dump(sd), "bare": dump(m.state_dict())}))
`;

function expectTensors(got: Map<string, TorchTensor>, want: Record<string, { shape: number[]; values: number[] }>) {
  expect([...got.keys()]).toEqual(Object.keys(want));
  for (const [name, { shape, values }] of Object.entries(want)) {
    const t = got.get(name)!;
    expect(t.shape, name).toEqual(shape);
    expect(Array.from(t.data), name).toEqual(values);
  }
}

describe.skipIf(skipWithoutTorch)('torch.save files with the real PyTorch', () => {
  it('reads what torch.save writes: the reference dict and a bare state_dict of Parameters', async () => {
    const dictPath = join(dir, 'reference.pt');
    const barePath = join(dir, 'bare.pt');
    const want = JSON.parse(await runPython(WRITE_REFERENCE, [dictPath, barePath]));

    const ckpt = await readTorchCheckpoint(dictPath);
    expectTensors(ckpt.stateDict, want.dict);
    expect(ckpt.meta).toMatchObject({ bare: false, epoch: 7, numCategories: 5 });
    expect(ckpt.meta.metrics).toEqual(
      new Map([
        ['recall@10', 0.125],
        ['loss', 2.5],
      ]),
    );
    expect([...ckpt.meta.catToIdx!]).toEqual([
      ['shoes', 0],
      ['bags', 1],
      ['hats', 2],
      ['belts', 3],
      ['tops', 4],
    ]);
    expect(ckpt.meta.optimizerStateDict).toBeInstanceOf(Map);

    const bare = await readTorchCheckpoint(barePath);
    expect(bare.meta.bare).toBe(true);
    expectTensors(bare.stateDict, want.bare);
  });

  it('writes what torch.load reads: same tensors, metadata and optimizer state (weights_only where torch can)', async () => {
    const source = join(dir, 'source.pt');
    await runPython(WRITE_REFERENCE, [source, join(dir, 'unused.pt')]);
    const ckpt = await readTorchCheckpoint(source);
    const out = join(dir, 'ours.pt');
    const contents = {
      epoch: ckpt.meta.epoch!,
      modelStateDict: ckpt.stateDict,
      metrics: ckpt.meta.metrics as Map<string, number>,
      numCategories: ckpt.meta.numCategories!,
      catToIdx: ckpt.meta.catToIdx!,
      optimizerStateDict: ckpt.meta.optimizerStateDict as TorchValue,
    };
    await writeFile(out, encodeTorchCheckpoint(contents, 'ours'));
    const bareOut = join(dir, 'ours-bare.pt');
    await writeFile(bareOut, encodeTorchSave(new PyOrderedDict<TorchValue>(ckpt.stateDict)));

    const compare = String.raw`
import json, sys, collections, torch
ref, ours, bare = (sys.argv[1], sys.argv[2], sys.argv[3])
a, b = torch.load(ref), torch.load(ours)
assert type(b["model_state_dict"]) is collections.OrderedDict, type(b["model_state_dict"])
assert list(a["model_state_dict"]) == list(b["model_state_dict"])
for k, v in a["model_state_dict"].items():
    w = b["model_state_dict"][k]
    assert w.dtype == torch.float32 and w.shape == v.shape and torch.equal(w, v), k
for k in ("epoch", "metrics", "num_categories", "cat_to_idx"):
    assert a[k] == b[k], (k, a[k], b[k])
sa, sb = a["optimizer_state_dict"], b["optimizer_state_dict"]
assert sa["state"].keys() == sb["state"].keys()
for i in sa["state"]:
    for k, v in sa["state"][i].items():
        assert torch.equal(v, sb["state"][i][k]), (i, k)
ga, gb = sa["param_groups"][0], sb["param_groups"][0]
assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in ga.items()} == gb, (ga, gb)
# weights_only: whatever torch accepts of its own files it must accept of ours.
def weights_only(path):
    try:
        return torch.load(path, weights_only=True)
    except TypeError:
        return None  # a torch without weights_only
    except Exception as e:
        return e
own, mine = weights_only(ref), weights_only(ours)
assert isinstance(own, Exception) == isinstance(mine, Exception), (own, mine)
c = weights_only(bare)
assert c is None or not isinstance(c, Exception), c
if c is not None:
    assert all(torch.equal(c[k], v) for k, v in a["model_state_dict"].items())
print(json.dumps({"keys": sorted(b.keys()), "weights_only_bare": c is not None}))
`;
    const result = JSON.parse(await runPython(compare, [source, out, bareOut]));
    expect(result.weights_only_bare).toBe(true);
    expect(result.keys).toEqual([
      'cat_to_idx',
      'epoch',
      'metrics',
      'model_state_dict',
      'num_categories',
      'optimizer_state_dict',
    ]);
  });

  it('refuses a torch.save file with a non-float32 tensor or without model_state_dict, naming what is wrong', async () => {
    const write = String.raw`
import sys, torch
torch.save({"model_state_dict": {"steps": torch.tensor([3, 4])}}, sys.argv[1])
torch.save({"epoch": 1, "state_dict": {"w": torch.zeros(2)}}, sys.argv[2])
torch.save({"w": torch.zeros(2, dtype=torch.float16)}, sys.argv[3])
torch.save({"model_state_dict": {"w": torch.zeros(2)}, "epoch": torch.tensor(5)}, sys.argv[4])
torch.save(torch.zeros(2), sys.argv[5])
`;
    const [long, renamed, half, tensorEpoch, bareTensor] = ['long', 'renamed', 'half', 'epoch', 'tensor'].map((n) =>
      join(dir, `${n}.pt`),
    );
    await runPython(write, [long, renamed, half, tensorEpoch, bareTensor]);
    await expect(readTorchCheckpoint(long)).rejects.toThrow(
      /model_state_dict: steps: a torch\.LongStorage tensor \[2\]; only float32 tensors are read/,
    );
    await expect(readTorchCheckpoint(renamed)).rejects.toThrow(
      /model_state_dict: missing \(keys found: epoch, state_dict\)/,
    );
    await expect(readTorchCheckpoint(half)).rejects.toThrow(
      /\(bare state_dict\): w: a torch\.HalfStorage tensor \[2\]; only float32 tensors are read/,
    );
    await expect(readTorchCheckpoint(tensorEpoch)).rejects.toThrow(
      /epoch: expected an integer, found a torch\.LongStorage tensor \[\]/,
    );
    await expect(readTorchCheckpoint(bareTensor)).rejects.toThrow(/expected a dict at the top, found a tensor/);
  });

  it('reads a checkpoint whose metrics hold tensors and numpy scalars of any dtype, keeping what it can read', async () => {
    const write = String.raw`
import sys, numpy as np, torch
metrics = {"recall@10": np.float64(0.25), "correct": torch.tensor(42), "best": np.bool_(True),
           "loss": np.float16(0.5), "mrr": 0.125}
torch.save({"model_state_dict": {"w": torch.ones(2)}, "epoch": 3, "metrics": metrics}, sys.argv[1])
`;
    const file = join(dir, 'metrics.pt');
    await runPython(write, [file]);
    const { stateDict, meta } = await readTorchCheckpoint(file);
    expect([...stateDict.keys()]).toEqual(['w']);
    expect(meta.epoch).toBe(3);
    const numbers = [...meta.metrics!].filter(([, v]) => typeof v === 'number');
    expect(Object.fromEntries(numbers)).toEqual({ 'recall@10': 0.25, mrr: 0.125 });
  });

  it('refuses pickles that call os.system or builtins.eval, names the global and runs nothing', async () => {
    const marker = join(dir, 'pwned');
    const writeEvil = String.raw`
import os, pickle, sys, torch, builtins
marker = sys.argv[1]
class System:
    def __reduce__(self): return (os.system, ("touch " + marker,))
class Eval:
    def __reduce__(self): return (builtins.eval, ("open(%r, 'w')" % marker,))
with open(sys.argv[2], "wb") as f: pickle.dump({"a": System()}, f, protocol=2)
with open(sys.argv[3], "wb") as f: pickle.dump({"a": Eval()}, f, protocol=4)
torch.save({"model_state_dict": {"w": torch.zeros(2)}, "epoch": System()}, sys.argv[4])
print(os.system.__module__)
`;
    const paths = ['system.pkl', 'eval.pkl', 'system.pt'].map((n) => join(dir, n));
    const systemModule = (await runPython(writeEvil, [marker, ...paths])).trim();
    await expect(readTorchCheckpoint(paths[2])).rejects.toThrow(
      new RegExp(`refused global ${systemModule}\\.system.*nothing was run`),
    );
    for (const [file, global] of [
      [paths[0], `${systemModule}.system`],
      [paths[1], 'builtins.eval'],
    ]) {
      const run = await ctl(['import', '--workdir', dir, '--embeddings', file, '--kind', 'scenes', '--model', 'm']);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`refused global ${global}`);
    }
    expect(existsSync(marker)).toBe(false);
  });
});
