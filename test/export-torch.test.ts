// `ctl export` against the real PyTorch (Debian python3-torch; under CI=true a missing torch fails the suite):
// the reference's classes (bench/train/torch_two_tower.py, declared as the reference writes them) load every
// exported model.safetensors and model.pt with strict=True, and their scene and product outputs equal ctl's tfjs
// forward and the exported ONNX towers (onnxruntime) within 1e-5 on the same inputs; the model card's snippets run
// as written; --with-optimizer's Adam state loads into torch.optim.AdamW and steps.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../src/data/store/npy.js';
import { workdirPaths } from '../src/data/workdir.js';
import { trainConfigSchema } from '../src/train/config.js';
import { loadTrainedModel } from '../src/model/load.js';
import { keyedRandom } from '../src/util/random.js';
import { ctlIn, trainedWorkdir } from './export-fixtures.js';
import { runPython, skipWithoutTorch } from './torch-python.js';

// Loads each export with the reference's classes and compares its outputs with ctl's and ONNX's (.npy files).
const COMPARE = String.raw`
import json, sys, numpy as np, torch
sys.path.insert(0, 'bench/train')
from torch_two_tower import CTLModel, CTLModelV2, read_safetensors, encode_products
import struct
def check_safetensors_layout(path):
    # The rules safetensors.torch.load_file enforces (the library itself is not packaged by Debian): an 8-byte
    # little-endian header length, a JSON header of str metadata and known dtypes, and data_offsets that tile the
    # data section from 0 to its end with no gap or overlap.
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    assert all(isinstance(v, str) for v in header.pop('__metadata__', {}).values())
    spans = sorted(tuple(e['data_offsets']) for e in header.values())
    assert all(e['dtype'] in ('F32', 'I32') for e in header.values())
    end = 0
    for begin, stop in spans:
        assert begin == end, (begin, end)
        end = stop
    assert end == len(raw) - 8 - n, (end, len(raw) - 8 - n)
out = {}
for d in sys.argv[1:]:
    check_safetensors_layout(f'{d}/model.safetensors')
    config = json.load(open(f'{d}/config.json'))
    cls = {'CTLModel': CTLModel, 'CTLModelV2': CTLModelV2}[config['reference']['name']]
    checkpoint = torch.load(f'{d}/model.pt', map_location='cpu')  # as the reference's app.py loads it
    assert sorted(checkpoint) == ['cat_to_idx', 'epoch', 'metrics', 'model_state_dict', 'num_categories'], sorted(checkpoint)
    assert checkpoint['cat_to_idx'] == config['cat_to_idx'] and checkpoint['num_categories'] == config['num_categories']
    assert checkpoint['epoch'] == config['checkpoint']['epoch']
    x = torch.from_numpy(np.load(f'{d}/check-inputs.npy'))
    categories = torch.tensor(json.load(open(f'{d}/check-categories.json')), dtype=torch.long)
    results = {}
    for source in ['safetensors', 'pt']:
        model = cls(**config['reference']['kwargs'])
        state = read_safetensors(f'{d}/model.safetensors') if source == 'safetensors' else checkpoint['model_state_dict']
        model.load_state_dict(state, strict=True)
        model.eval()
        with torch.no_grad():
            got = {'scene': model.encode_scene(x).numpy(), 'product': encode_products(model, x, categories).numpy()}
        for tower in ['scene', 'product']:
            for other in ['ctl', 'onnx']:
                want = np.load(f'{d}/check-{tower}-{other}.npy')
                results[f'{source} {tower} vs {other}'] = float(np.abs(got[tower] - want).max())
    out[d] = results
print(json.dumps(out))
`;

// Loads model.pt's optimizer_state_dict into AdamW over the reference model, compares every moment with the run's
// trainer.safetensors, and takes one more step.
const RESUME_IN_TORCH = String.raw`
import json, sys, torch
sys.path.insert(0, 'bench/train')
from torch_two_tower import CTLModelV2, read_safetensors
export_dir, last = sys.argv[1:3]
config = json.load(open(f'{export_dir}/config.json'))
checkpoint = torch.load(f'{export_dir}/model.pt', map_location='cpu')
model = CTLModelV2(**config['reference']['kwargs'])
model.load_state_dict(checkpoint['model_state_dict'], strict=True)
optimizer = torch.optim.AdamW(model.parameters())
optimizer.load_state_dict(checkpoint['optimizer_state_dict'])
trainer = read_safetensors(f'{last}/trainer.safetensors')
t = json.load(open(f'{last}/state.json'))['optimizer']['t']
identical, step, moments = True, True, 0
for name, p in model.named_parameters():
    s = optimizer.state[p]
    identical &= torch.equal(s['exp_avg'], trainer['exp_avg.' + name]) and torch.equal(s['exp_avg_sq'], trainer['exp_avg_sq.' + name])
    step &= float(s['step']) == t
    moments += 1
model.train()
model.encode_scene(torch.randn(4, config['dims']['input'])).sum().backward()
optimizer.step()
print(json.dumps({'identical': bool(identical), 'step': bool(step), 'moments': moments, 'stepped': True}))
`;

// Runs the model card's snippets for model.pt and the product index, as written, in the export folder.
const CARD_SNIPPETS = String.raw`
import os, sys, numpy as np
sys.path.insert(0, os.path.abspath('bench/train'))
os.chdir(sys.argv[1])
card = open('model-card.md').read()
tick = chr(96)
def snippet(title):
    start = card.index('### ' + tick + title + tick)
    code = card.index(tick * 3 + 'python' + chr(10), start) + 10
    return card[code:card.index(tick * 3, code)]
pt = {}
exec(snippet('model.pt'), pt)
index = {'scene_vector': np.load('product_index.npy')[0]}
exec(snippet('product_index.npy'), index)
print(type(pt['model']).__name__, index['top10'][0] == index['products'][0]['url'])
`;

let workdir = '';
let out = '';

beforeAll(async () => {
  if (skipWithoutTorch) return;
  ({ workdir } = await trainedWorkdir(13));
  out = await mkdtemp(join(tmpdir(), 'ctl-export-torch-'));
}, 240_000);

afterAll(async () => {
  if (workdir) await rm(workdir, { recursive: true, force: true });
  if (out) await rm(out, { recursive: true, force: true });
});

async function onnxRun(file: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  try {
    return (await session.run(feeds))[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

describe.skipIf(skipWithoutTorch)('ctl export with the real PyTorch', () => {
  it("every exported pt and safetensors loads strictly into the reference's classes and computes ctl's towers", async () => {
    const dirs: string[] = [];
    for (const run of ['v1', 'v2']) {
      const dir = join(out, run);
      const exported = ctlIn(workdir)('export', '--run', run, '--format', 'all', '--out', dir);
      expect(exported.status, exported.stderr).toBe(0);
      // The same inputs through ctl's forward and the ONNX files, for python to compare with.
      const model = await loadTrainedModel(workdirPaths(workdir).run(run), 'best', { config: trainConfigSchema });
      const { inputDim: dim, out: outDim, numCategories } = model.spec;
      const rows = 9;
      const rng = keyedRandom(3, 'export-torch', run);
      const x = Float32Array.from({ length: rows * dim }, () => rng.normal());
      const categories = Int32Array.from({ length: rows }, (_, i) => i % Math.max(1, numCategories));
      const feeds = (name: string) => ({ [name]: new ort.Tensor('float32', x, [rows, dim]) });
      const productFeeds: Record<string, ort.Tensor> = feeds('product_embedding');
      if (numCategories > 0 && model.spec.categoryDim > 0)
        productFeeds.category = new ort.Tensor('int64', BigInt64Array.from(categories, BigInt), [rows]);
      const files: Record<string, Float32Array> = {
        'check-inputs': x,
        'check-scene-ctl': await model.encodeScenes(x, rows),
        'check-product-ctl': await model.encodeProducts(x, categories, rows),
        'check-scene-onnx': await onnxRun(join(dir, 'scene_tower.onnx'), feeds('scene_embedding')),
        'check-product-onnx': await onnxRun(join(dir, 'product_tower.onnx'), productFeeds),
      };
      for (const [name, data] of Object.entries(files))
        await writeFile(join(dir, `${name}.npy`), encodeNpy(data, [rows, name === 'check-inputs' ? dim : outDim]));
      await writeFile(join(dir, 'check-categories.json'), JSON.stringify(Array.from(categories)));
      dirs.push(dir);
    }
    const results = JSON.parse(await runPython(COMPARE, dirs));
    expect((await runPython(CARD_SNIPPETS, [dirs[0]])).trim()).toBe('CTLModel True');
    expect((await runPython(CARD_SNIPPETS, [dirs[1]])).trim()).toBe('CTLModelV2 True');
    for (const dir of dirs) {
      expect(Object.keys(results[dir])).toHaveLength(8);
      for (const [what, difference] of Object.entries(results[dir]))
        expect(difference, `${dir}: ${what}`).toBeLessThan(1e-5);
    }
  });

  it("--with-optimizer: the last checkpoint's Adam state loads into torch.optim.AdamW, moment for moment", async () => {
    const dir = join(out, 'with-optimizer');
    const exported = ctlIn(workdir)(
      'export',
      '--run',
      'v2',
      '--checkpoint',
      'last',
      '--format',
      'pt',
      '--with-optimizer',
      '--out',
      dir,
    );
    expect(exported.status, exported.stderr).toBe(0);
    const last = join(workdirPaths(workdir).run('v2'), 'checkpoints', 'last');
    const result = JSON.parse(await runPython(RESUME_IN_TORCH, [dir, last]));
    expect(result.moments).toBe(30); // every parameter of the v2 model with one residual block
    expect(result).toMatchObject({ identical: true, step: true, stepped: true });
  });
});
