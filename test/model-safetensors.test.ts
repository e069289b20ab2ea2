// Checkpoint weights: the safetensors writer/reader, the reference PyTorch names and layouts of v1 and v2, a
// parse by Python (standard library + NumPy), and, with python3-torch installed, load_state_dict into the
// reference classes (bench/train/torch_two_tower.py: CTLModel, CTLModelV2) giving the same tower outputs as ours.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { decodeSafetensors, encodeSafetensors } from '../src/model/safetensors.js';
import { fromStateDict, toStateDict } from '../src/model/state-dict.js';
import { TwoTower, type ModelSpec } from '../src/model/two-tower.js';
import { tempPathFor } from '../src/util/atomic.js';
import { InputError } from '../src/util/errors.js';
import { keyedRandom } from '../src/util/random.js';
import { checkpointDir, loadCheckpoint, readCheckpointState, saveCheckpoint } from '../src/model/checkpoint.js';
import { encodeRows } from '../src/model/encode.js';
import { checkpointStateFor, TINY_V1, TINY_V2 } from './model-fixtures.js';

const PYTHON = '/usr/bin/python3';
const canRun = (code: string) => spawnSync(PYTHON, ['-c', code], { encoding: 'utf8' }).status === 0;
const hasNumpy = canRun('import numpy');
const hasTorch = canRun('import torch');

const v1 = TINY_V1;
const v2 = TINY_V2;

let dir = '';
beforeAll(async () => {
  await tf.setBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'ctl-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let offset = 0;
  for (const c of chunks) out.set(c, (offset += c.length) - c.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips F32 and I32 tensors, scalars and views into a larger buffer included, with metadata', () => {
    const file = {
      tensors: {
        a: { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
        s: { dtype: 'F32' as const, shape: [], data: Float32Array.from([-2.5]) },
        i: { dtype: 'I32' as const, shape: [3], data: Int32Array.from([-1, 0, 7]) },
        view: { dtype: 'F32' as const, shape: [2], data: Float32Array.from([9, 8, 7, 6]).subarray(1, 3) },
      },
      // Not ASCII: the header is padded to 8 bytes, not 8 characters.
      metadata: { format: 'pt', cat_to_idx: '{"Décor ✓":0}' },
    };
    const bytes = concat(encodeSafetensors(file));
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    expect(decodeSafetensors(bytes, 'test')).toEqual(file);
  });

  it('rejects a truncated file with a clear reason', () => {
    const bytes = concat(
      encodeSafetensors({ tensors: { a: { dtype: 'F32', shape: [4], data: new Float32Array(4) } }, metadata: {} }),
    );
    expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), 'x.safetensors')).toThrow(
      /x.safetensors: not a valid safetensors file/,
    );
  });
});

describe('reference state_dict names and layouts', () => {
  it('v1', () => {
    const names = Object.fromEntries(
      Object.entries(toStateDict(new TwoTower(v1).layout, new TwoTower(v1).layout.initialise(1))).map(([k, t]) => [
        k,
        t.shape,
      ]),
    );
    expect(names).toEqual({
      'scene_encoder.0.weight': [6, 5],
      'scene_encoder.0.bias': [6],
      'scene_encoder.3.weight': [4, 6],
      'scene_encoder.3.bias': [4],
      'product_encoder.0.weight': [6, 5],
      'product_encoder.0.bias': [6],
      'product_encoder.3.weight': [4, 6],
      'product_encoder.3.bias': [4],
      temperature: [],
    });
  });

  it('v2', () => {
    const layout = new TwoTower(v2).layout;
    const shapes = Object.fromEntries(
      Object.entries(toStateDict(layout, layout.initialise(1))).map(([k, t]) => [k, t.shape]),
    );
    const linear = (name: string, inDim: number, outDim: number) => ({
      [`${name}.weight`]: [outDim, inDim],
      [`${name}.bias`]: [outDim],
    });
    const norm = (name: string) => ({ [`${name}.weight`]: [8], [`${name}.bias`]: [8] });
    const block = (name: string) => ({
      ...linear(`${name}.net.0`, 8, 8),
      ...norm(`${name}.net.1`),
      ...linear(`${name}.net.4`, 8, 8),
      ...norm(`${name}.norm`),
    });
    const tower = (t: string, inDim: number) => ({
      ...linear(`${t}.0`, inDim, 8),
      ...norm(`${t}.1`),
      ...block(`${t}.4`),
      ...block(`${t}.5`),
      ...linear(`${t}.6`, 8, 4),
    });
    expect(shapes).toEqual({
      ...tower('scene_encoder', 5),
      ...tower('product_encoder', 8),
      'category_embedding.weight': [3, 3],
      log_temperature: [],
    });
  });

  it('transposes linear weights to [out, in] and back', () => {
    const layout = new TwoTower(v1).layout;
    const flat = Float32Array.from({ length: layout.size }, (_, i) => i);
    const dict = toStateDict(layout, flat);
    const w = layout.get('scene_encoder.0.weight'); // ours [in 5, out 6]
    // PyTorch [out, in]: element (o, i) = ours (i, o)
    expect(dict['scene_encoder.0.weight'].data[2 * 5 + 3]).toBe(flat[w.offset + 3 * 6 + 2]);
    expect(fromStateDict(layout, dict, 'test')).toEqual(flat);
  });
});

async function writeCheckpoint(spec: ModelSpec, name: string): Promise<{ runDir: string; params: Float32Array }> {
  const model = new TwoTower(spec);
  const params = model.layout.initialise(3);
  // Move LayerNorm and temperature off their init so a mix-up would show.
  for (let i = 0; i < params.length; i++) params[i] += 0.05 * Math.sin(i);
  const runDir = join(dir, name);
  const state = checkpointStateFor(spec, { cat_to_idx: { Shoes: 0, Bags: 1, Hats: 2 }, num_categories: 3 });
  await saveCheckpoint(runDir, 'best', model.layout, { state, params });
  return { runDir, params };
}

describe('checkpoints outside Node', () => {
  it('round-trip through saveCheckpoint / loadCheckpoint', async () => {
    const { runDir, params } = await writeCheckpoint(v2, 'roundtrip');
    const loaded = await loadCheckpoint(runDir, 'best', new TwoTower(v2).layout);
    expect(loaded.params).toEqual(params);
  });

  it('a damaged state.json is an error naming its line and column, not "no checkpoint" (which a new run would overwrite)', async () => {
    const { runDir } = await writeCheckpoint(v2, 'damaged');
    const file = join(checkpointDir(runDir, 'best'), 'state.json');
    await writeFile(file, '{\n  "version": 2,\n  "epoch": \n');
    await expect(readCheckpointState(runDir, 'best')).rejects.toThrow(
      new RegExp(`^${file}:4:1: not valid JSON \\(.*\\); the checkpoint is damaged`),
    );
    expect(await readCheckpointState(runDir, 'last')).toBeNull(); // absent is still "none"

    // Its weights gone beside a good state.json: damaged too, the file named (it was a bare ENOENT, exit 1).
    const { runDir: noWeights } = await writeCheckpoint(v2, 'no-weights');
    const weights = join(checkpointDir(noWeights, 'best'), 'model.safetensors');
    await rm(weights);
    const loading = loadCheckpoint(noWeights, 'best', new TwoTower(v2).layout);
    await expect(loading).rejects.toThrow(InputError);
    await expect(loading).rejects.toThrow(`${weights}: cannot read (ENOENT); the checkpoint is damaged`);
  });

  it("readers (eval, export, serve) leave the folder a live trainer is writing, and drop a dead one's", async () => {
    const { runDir, params } = await writeCheckpoint(v2, 'concurrent');
    const layout = new TwoTower(v2).layout;
    const state = (await loadCheckpoint(runDir, 'best', layout)).state;
    const next = params.map((p) => p + 1);
    for (let round = 0; round < 5; round++) {
      let saved = false;
      const reader = async () => {
        while (!saved) await loadCheckpoint(runDir, 'best', layout).catch(() => null);
      };
      await Promise.all([
        saveCheckpoint(runDir, 'best', layout, { state, params: round % 2 ? params : next }).finally(
          () => (saved = true),
        ),
        reader(),
      ]);
    }
    expect((await loadCheckpoint(runDir, 'best', layout)).params).toEqual(next);

    const dead = tempPathFor(checkpointDir(runDir, 'best')).replace(
      `.${process.pid}.`,
      `.${spawnSync(process.execPath, ['-e', '']).pid}.`,
    );
    await mkdir(dead);
    await loadCheckpoint(runDir, 'best', layout);
    expect(await readdir(join(runDir, 'checkpoints'))).toEqual(['best']);
  });

  it('a reader gets the state and weights of one save while a trainer saves again and again', async () => {
    const { runDir, params } = await writeCheckpoint(v2, 'one-save');
    const layout = new TwoTower(v2).layout;
    const { state } = await loadCheckpoint(runDir, 'best', layout);
    const weightsOf = (epoch: number) => params.map((p) => p + epoch);
    await saveCheckpoint(runDir, 'best', layout, { state, params: weightsOf(state.epoch) });
    let saving = true;
    const saver = (async () => {
      for (let epoch = state.epoch + 1; epoch <= state.epoch + 60; epoch++)
        await saveCheckpoint(runDir, 'best', layout, { state: { ...state, epoch }, params: weightsOf(epoch) });
      saving = false;
    })();
    const mixed: string[] = [];
    let loads = 0;
    while (saving) {
      const loaded = await loadCheckpoint(runDir, 'best', layout);
      loads++;
      if (loaded.params[0] !== weightsOf(loaded.state.epoch)[0])
        mixed.push(`state of epoch ${loaded.state.epoch} with other weights`);
    }
    await saver;
    expect(loads).toBeGreaterThan(10);
    expect(mixed).toEqual([]);
  });

  it.skipIf(!hasNumpy)('parse with the Python standard library and NumPy', async () => {
    const { runDir } = await writeCheckpoint(v2, 'numpy');
    const script = `
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
meta = header.pop('__metadata__')
out = {}
for name, e in header.items():
    b, end = e['data_offsets']
    a = np.frombuffer(raw[8 + n + b:8 + n + end], dtype=np.float32).reshape(e['shape'])
    out[name] = [list(a.shape), float(a.sum())]
print(json.dumps({'meta': meta, 'tensors': out}))`;
    const file = join(checkpointDir(runDir, 'best'), 'model.safetensors');
    const run = spawnSync(PYTHON, ['-c', script, file], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const parsed = JSON.parse(run.stdout);
    expect(parsed.meta.format).toBe('pt');
    expect(JSON.parse(parsed.meta.cat_to_idx)).toEqual({ Shoes: 0, Bags: 1, Hats: 2 });
    expect(parsed.meta.num_categories).toBe('3');
    const ours = decodeSafetensors(new Uint8Array(await readFile(file)), file).tensors;
    for (const [name, t] of Object.entries(ours)) {
      expect(parsed.tensors[name][0]).toEqual(t.shape);
      expect(parsed.tensors[name][1]).toBeCloseTo(
        Array.from(t.data).reduce((a, b) => a + b, 0),
        3,
      );
    }
  });

  it.skipIf(!hasTorch)('load_state_dict(strict=True) into the PyTorch classes and encode alike (v1, v2)', async () => {
    const rng = keyedRandom(5);
    const n = 7;
    const cases = await Promise.all(
      [v1, v2].map(async (spec) => {
        const { runDir, params } = await writeCheckpoint(spec, `torch-${spec.arch}`);
        const scenes = Float32Array.from({ length: n * spec.inputDim }, () => rng.normal());
        const products = Float32Array.from({ length: n * spec.inputDim }, () => rng.normal());
        const categories = Int32Array.from({ length: n }, () => rng.int(spec.numCategories));
        const model = new TwoTower(spec);
        return {
          spec,
          model,
          params,
          input: {
            dir: checkpointDir(runDir, 'best'),
            arch: spec.arch,
            dim: spec.inputDim,
            scenes: Array.from(scenes),
            products: Array.from(products),
            categories: Array.from(categories),
          },
          scenes: encodeRows(model, params, 'scene', scenes, null, n),
          products: encodeRows(model, params, 'product', products, categories, n),
        };
      }),
    );
    const script = `
import json, sys
sys.path.insert(0, 'bench/train')
import torch
from torch_two_tower import CTLModel, CTLModelV2, encode_products, from_safetensors
out = []
for d in json.load(sys.stdin):
    m = from_safetensors(d['dir'])
    assert type(m) is (CTLModel if d['arch'] == 'v1' else CTLModelV2)
    dim = d['dim']
    with torch.no_grad():
        s = m.encode_scene(torch.tensor(d['scenes']).reshape(-1, dim))
        p = encode_products(m, torch.tensor(d['products']).reshape(-1, dim), torch.tensor(d['categories']).long())
    out.append({'scenes': s.flatten().tolist(), 'products': p.flatten().tolist(), 'temperature': m.temperature.item(), 'keys': list(m.state_dict().keys())})
print(json.dumps(out))`;
    const run = spawnSync(PYTHON, ['-c', script], {
      input: JSON.stringify(cases.map((c) => c.input)),
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    const results = JSON.parse(run.stdout);
    cases.forEach((c, k) => {
      results[k].scenes.forEach((x: number, i: number) => expect(c.scenes[i]).toBeCloseTo(x, 5));
      results[k].products.forEach((x: number, i: number) => expect(c.products[i]).toBeCloseTo(x, 5));
      // Our tensors, in PyTorch's state_dict order.
      expect(Object.keys(toStateDict(c.model.layout, c.params))).toEqual(results[k].keys);
      const t = c.params[c.model.layout.get(c.model.temperatureParam!.name).offset];
      expect(results[k].temperature).toBeCloseTo(c.spec.arch === 'v1' ? t : Math.exp(t), 6);
    });
  });
});
