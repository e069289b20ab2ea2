// `ctl import --checkpoint` against the real PyTorch (Debian python3-torch; under CI=true a missing torch fails the
// suite): torch writes reference checkpoints (random weights, v1 and v2, as the reference's dict and as a bare
// state_dict); ctl imports them into runs, `ctl export --format pt` writes them back and torch finds the tensors
// identical; `ctl eval --protocol seed` on an imported run gives the metrics of the reference's own evaluation loop
// re-run in Python on the same embeddings; serve's recommender opens an imported run; bad files exit 2 naming the
// key, the shapes or the category.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { encodeNpy } from '../src/data/store/npy.js';
import { loadPairInputs } from '../src/data/store/pair-inputs.js';
import { workdirPaths } from '../src/data/workdir.js';
import { Recommender } from '../src/serve/recommender.js';
import { lockRun } from '../src/train/run.js';
import { ctlIn } from './export-fixtures.js';
import { runPython, skipWithoutTorch } from './torch-python.js';
import { plantedWorkdir, TEST_MODEL } from './train-fixtures.js';
import { gatherRows } from '../src/util/matrix.js';

// The reference's classes with random weights, saved as the reference saves them and as bare state_dicts.
const WRITE_CHECKPOINTS = String.raw`
import json, sys, torch
sys.path.insert(0, 'bench/train')
from torch_two_tower import CTLModel, CTLModelV2
out, leaves = sys.argv[1], json.loads(sys.argv[2])
torch.manual_seed(0)
models = {
    'v2': CTLModelV2(input_dim=24, hidden_dim=20, output_dim=8, num_categories=len(leaves), category_dim=5, num_blocks=2),
    'v1': CTLModel(input_dim=24, hidden_dim=16, output_dim=8),
}
cat_to_idx = {name: i for i, name in enumerate(reversed(leaves))}  # an order of its own, not the dataset's
for name, model in models.items():
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    for _ in range(3):  # a few steps, so the file holds Adam's moments
        optimizer.zero_grad()
        sum((p * torch.randn_like(p)).sum() for p in model.parameters()).backward()
        optimizer.step()
    torch.save({'epoch': 12, 'model_state_dict': model.state_dict(),
                'optimizer_state_dict': optimizer.state_dict(),
                'metrics': {'recall@10': 0.25, 'mrr': 0.125}, 'num_categories': len(leaves), 'cat_to_idx': cat_to_idx},
               f'{out}/{name}-dict.pt')
    torch.save(model.state_dict(), f'{out}/{name}-bare.pt')
# Another optimizer's state: the weights import, its state is passed over.
sgd = torch.optim.SGD(models['v1'].parameters(), lr=0.1, momentum=0.9)
sum((p * torch.randn_like(p)).sum() for p in models['v1'].parameters()).backward()
sgd.step()
torch.save({'model_state_dict': models['v1'].state_dict(), 'optimizer_state_dict': sgd.state_dict()}, f'{out}/v1-sgd.pt')
# Optimizers whose state looks like Adam's but is not: RAdam (the same keys), AMSGrad (a third moment).
for name, opt in [('radam', torch.optim.RAdam(models['v1'].parameters())),
                  ('amsgrad', torch.optim.Adam(models['v1'].parameters(), amsgrad=True))]:
    sum((p * torch.randn_like(p)).sum() for p in models['v1'].parameters()).backward()
    opt.step()
    torch.save({'model_state_dict': models['v1'].state_dict(), 'optimizer_state_dict': opt.state_dict()},
               f'{out}/v1-{name}.pt')
# Adam over param groups of its own: a state entry's index says which parameter only for one group over all of them.
v1 = models['v1']
decay = [p for p in v1.parameters() if p.dim() > 1]
for name, opt in [('groups', torch.optim.AdamW([{'params': decay},
                                               {'params': [p for p in v1.parameters() if p.dim() <= 1], 'weight_decay': 0}])),
                  ('frozen', torch.optim.Adam([p for p in v1.parameters() if p is not v1.temperature])),
                  ('reordered', torch.optim.Adam(list(reversed(list(v1.parameters())))))]:
    sum((p * torch.randn_like(p)).sum() for p in v1.parameters()).backward()
    opt.step()
    torch.save({'model_state_dict': v1.state_dict(), 'optimizer_state_dict': opt.state_dict()}, f'{out}/v1-{name}.pt')
# Adam's state as it should be, but with moments that overflowed.
opt = torch.optim.Adam(v1.parameters())
sum((p * torch.randn_like(p)).sum() for p in v1.parameters()).backward()
opt.step()
opt.state[v1.scene_encoder[0].weight]['exp_avg'][0, 0] = float('inf')
torch.save({'model_state_dict': v1.state_dict(), 'optimizer_state_dict': opt.state_dict()}, f'{out}/v1-overflowed.pt')
# Adam's state whose parameters stepped different numbers of times (the temperature had no gradient in step 2).
uneven = torch.optim.Adam(v1.parameters())
for skipped in (None, v1.temperature):
    uneven.zero_grad(set_to_none=True)
    sum((p * torch.randn_like(p)).sum() for p in v1.parameters() if p is not skipped).backward()
    uneven.step()
torch.save({'model_state_dict': v1.state_dict(), 'optimizer_state_dict': uneven.state_dict()}, f'{out}/v1-uneven.pt')
# Bad files: a misshapen tensor, a missing one, a category map without one of the dataset's leaves, another dim.
sd = models['v2'].state_dict()
torch.save({**sd, 'product_encoder.0.weight': torch.zeros(20, 24)}, f'{out}/bad-shape.pt')
torch.save({k: v for k, v in sd.items() if k != 'scene_encoder.5.norm.bias'}, f'{out}/bad-missing.pt')
torch.save({'model_state_dict': sd, 'num_categories': len(leaves),
            'cat_to_idx': {**{n: i for i, n in enumerate(leaves[:-1])}, 'Hats': len(leaves) - 1}}, f'{out}/bad-category.pt')
torch.save(CTLModel(input_dim=20, hidden_dim=16, output_dim=8).state_dict(), f'{out}/bad-dim.pt')
torch.save({'model_state_dict': sd, 'num_categories': len(leaves),
            'cat_to_idx': {**{n: i for i, n in enumerate(leaves)}, leaves[1]: 0}}, f'{out}/bad-rows.pt')
nan = {k: v.clone() for k, v in sd.items()}
nan['scene_encoder.0.weight'][1, 2] = float('nan')
torch.save(nan, f'{out}/bad-nan.pt')
`;

// Each exported model.pt against the file it was imported from: same keys in the same order, identical tensors.
const COMPARE_ROUND_TRIP = String.raw`
import json, sys, torch
result = {}
for original, exported in zip(sys.argv[1::2], sys.argv[2::2]):
    a = torch.load(original, map_location='cpu')
    b = torch.load(exported, map_location='cpu')
    sa = a['model_state_dict'] if 'model_state_dict' in a else a
    sb = b['model_state_dict']
    result[original] = {
        'keys': list(sa) == list(sb),
        'identical': all(torch.equal(sa[k], sb[k]) for k in sa),
        'tensors': len(sa),
        'epoch': b['epoch'],
        'cat_to_idx': b['cat_to_idx'] == a['cat_to_idx'] if 'cat_to_idx' in a else None,
        'metrics': {k: float(v) for k, v in b['metrics'].items()},
    }
    if 'optimizer_state_dict' in b:
        oa, ob = a['optimizer_state_dict']['state'], b['optimizer_state_dict']['state']
        result[original]['optimizer'] = {
            'entries': sorted(oa) == sorted(ob) and len(oa),
            'steps': sorted({float(e['step']) for e in ob.values()}),
            'identical': all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in ('exp_avg', 'exp_avg_sq')),
        }
print(json.dumps(result))
`;

// The reference's evaluation loop: encode the validation pairs, score every scene against every pair's product
// (n x n), rank of the diagonal by a descending argsort, recall@K and MRR. Categories through the checkpoint's
// cat_to_idx, or for a bare state_dict the reference's own numbering from the category file.
const REFERENCE_EVAL = String.raw`
import json, sys, numpy as np, torch
sys.path.insert(0, 'bench/train')
from torch_two_tower import CTLModel, CTLModelV2, encode_products
checkpoint_file, data_dir, category_file = sys.argv[1:4]
checkpoint = torch.load(checkpoint_file, map_location='cpu')
state = checkpoint.get('model_state_dict', checkpoint)
if 'cat_to_idx' in checkpoint:
    cat_to_idx = checkpoint['cat_to_idx']
else:
    cat_to_idx = {}
    for path in json.load(open(category_file)).values():
        cat_to_idx.setdefault(path.split('|')[-1], len(cat_to_idx))
if 'log_temperature' in state:
    w = state['scene_encoder.0.weight']
    blocks = sum(1 for k in state if k.startswith('scene_encoder.') and k.endswith('.net.0.weight'))
    model = CTLModelV2(w.shape[1], w.shape[0], state[f'scene_encoder.{4 + blocks}.weight'].shape[0],
                       state['category_embedding.weight'].shape[0], state['category_embedding.weight'].shape[1], blocks)
else:
    w = state['scene_encoder.0.weight']
    model = CTLModel(w.shape[1], w.shape[0], state['scene_encoder.3.weight'].shape[0])
model.load_state_dict(state, strict=True)
model.eval()
scenes = torch.from_numpy(np.load(f'{data_dir}/val-scenes.npy'))
products = torch.from_numpy(np.load(f'{data_dir}/val-products.npy'))
categories = torch.tensor([cat_to_idx[leaf] for leaf in json.load(open(f'{data_dir}/val-leaves.json'))])
with torch.no_grad():
    sims = model.encode_scene(scenes) @ encode_products(model, products, categories).T
ranks = []
for i in range(len(sims)):
    order = torch.argsort(sims[i], descending=True)
    ranks.append((order == i).nonzero().item() + 1)
ranks = np.array(ranks)
print(json.dumps({'recall': {str(k): float((ranks <= k).mean()) for k in (1, 5, 10, 50)},
                  'mrr': float((1.0 / ranks).mean()), 'queries': len(ranks)}))
`;

let workdir = '';
let dataset: Dataset;
let dir = '';
let ctl: ReturnType<typeof ctlIn>;

beforeAll(async () => {
  if (skipWithoutTorch) return;
  ({ workdir, dataset } = await plantedWorkdir({ scenes: 240, dim: 24, categories: 4, latent: 6, seed: 17 }));
  ctl = ctlIn(workdir);
  dir = await mkdtemp(join(tmpdir(), 'ctl-import-'));
  await runPython(WRITE_CHECKPOINTS, [dir, JSON.stringify(dataset.categories.map((c) => c.name))]);
  // The seed protocol's validation pairs as the reference's loop reads them: scene and product rows, leaf names.
  const val = dataset.splits.seed.parts.val!;
  const inputs = await loadPairInputs(workdir, dataset, TEST_MODEL, 'full', val);
  const productRow = new Map(dataset.products.map((p, j) => [p.sig, j]));
  const pairProducts = new Float32Array(inputs.keptPairs.length * inputs.dim);
  inputs.keptPairs.forEach((p, i) => {
    const j = productRow.get(dataset.pairs[p].product)!;
    pairProducts.set(inputs.products.subarray(j * inputs.dim, (j + 1) * inputs.dim), i * inputs.dim);
  });
  const rows = inputs.keptPairs.length;
  const pairScenes = gatherRows(inputs.scenes, inputs.sceneRow, inputs.dim);
  await writeFile(join(dir, 'val-scenes.npy'), encodeNpy(pairScenes, [rows, inputs.dim]));
  await writeFile(join(dir, 'val-products.npy'), encodeNpy(pairProducts, [rows, inputs.dim]));
  const leaves = inputs.keptPairs.map((p) => {
    const product = dataset.products[productRow.get(dataset.pairs[p].product)!];
    return dataset.categories[product.category].name;
  });
  await writeFile(join(dir, 'val-leaves.json'), JSON.stringify(leaves));
}, 240_000);

afterAll(async () => {
  if (workdir) await rm(workdir, { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

const FILES = ['v2-dict', 'v2-bare', 'v1-dict', 'v1-bare'];

describe.skipIf(skipWithoutTorch)('ctl import --checkpoint with the real PyTorch', () => {
  it('imports v1 and v2, dict and bare; export --format pt writes back the very tensors', async () => {
    const pairs: string[] = [];
    for (const name of FILES) {
      const imported = ctl('import', '--checkpoint', join(dir, `${name}.pt`), '--run', name, '--json');
      expect(imported.status, imported.stderr).toBe(0);
      const summary = JSON.parse(imported.stdout);
      const v2 = name.startsWith('v2');
      expect(summary).toMatchObject({
        run: name,
        arch: v2 ? 'v2' : 'v1',
        dims: v2
          ? { input: 24, hidden: 20, out: 8, blocks: 2, category: 5 }
          : { input: 24, hidden: 16, out: 8, blocks: 0, category: 0 },
        bare: name.endsWith('bare'),
        epoch: name.endsWith('bare') ? 0 : 12,
        embeddings: TEST_MODEL,
      });
      const state = JSON.parse(
        await readFile(join(workdirPaths(workdir).run(name), 'checkpoints', 'best', 'state.json'), 'utf8'),
      );
      if (name === 'v2-dict') {
        const leaves = dataset.categories.map((c) => c.name).reverse();
        expect(state.categoryMap.cat_to_idx).toEqual(Object.fromEntries(leaves.map((n, i) => [n, i])));
        expect(state.imported.metrics).toEqual({ 'recall@10': 0.25, mrr: 0.125 });
      }
      expect(summary.optimizerSteps).toBe(name.endsWith('dict') ? 3 : null);
      const out = join(dir, `export-${name}`);
      const withOptimizer = name.endsWith('dict') ? ['--checkpoint', 'last', '--with-optimizer'] : [];
      const exported = ctl('export', '--run', name, '--format', 'pt', ...withOptimizer, '--out', out);
      expect(exported.status, exported.stderr).toBe(0);
      const card = await readFile(join(out, 'model-card.md'), 'utf8');
      expect(card).toContain(`imported by \`ctl import --checkpoint\` from \`${join(dir, `${name}.pt`)}\``);
      // v1 has no category embedding: its categories are only numbered.
      expect(card).toContain(v2 ? '- Categories (row of the category embedding: ' : '- Categories (index: ');
      pairs.push(join(dir, `${name}.pt`), join(out, 'model.pt'));
    }
    const result = JSON.parse(await runPython(COMPARE_ROUND_TRIP, pairs));
    for (const name of FILES) {
      const r = result[join(dir, `${name}.pt`)];
      expect(r, name).toMatchObject({ keys: true, identical: true, epoch: name.endsWith('bare') ? 0 : 12 });
      expect(r.tensors, name).toBe(name.startsWith('v2') ? 46 : 9);
      if (name.endsWith('dict')) expect(r.cat_to_idx, name).toBe(true);
      // Adam's moments and step count go through the round trip, every parameter's.
      if (name.endsWith('dict')) expect(r.optimizer, name).toEqual({ entries: r.tensors, steps: [3], identical: true });
    }
    const withOptimizer = ctl(
      'export',
      '--run',
      'v2-bare',
      '--format',
      'pt',
      '--checkpoint',
      'last',
      '--with-optimizer',
      '--out',
      join(dir, 'o'),
    );
    expect([withOptimizer.status, withOptimizer.stderr]).toEqual([
      2,
      expect.stringMatching(
        /the file it was imported from had none; .*ctl train --config .*v2-bare.config\.json --run v2-bare --workdir \S+ --resume/,
      ),
    ]);
    // The file's own metrics go on through the round trip; a bare state_dict had none to give.
    expect(result[join(dir, 'v2-dict.pt')].metrics).toEqual({ 'recall@10': 0.25, mrr: 0.125 });
    expect(result[join(dir, 'v2-bare.pt')].metrics).toEqual({});
  });

  it("trains on from the run's config.json with the file's Adam state: its step count goes on from the file's", async () => {
    const imported = ctl('import', '--checkpoint', join(dir, 'v2-dict.pt'), '--run', 'v2-goes-on');
    expect(imported.status, imported.stderr).toBe(0);
    expect(imported.stderr).toContain("Adam's state at step 3");
    const runDir = workdirPaths(workdir).run('v2-goes-on');
    const trained = ctl('train', '--config', join(runDir, 'config.json'), '--run', 'v2-goes-on', '--resume');
    expect(trained.status, trained.stderr).toBe(0);
    expect(trained.stderr).toContain('resuming after epoch 12/50');
    const state = JSON.parse(await readFile(join(runDir, 'checkpoints', 'last', 'state.json'), 'utf8'));
    expect(state.epoch).toBeGreaterThan(12);
    expect(state.optimizer.t).toBe(3 + state.step);
  });

  it("imports the weights of a file whose optimizer state ctl's Adam cannot hold, saying why it passes it over", async () => {
    for (const [name, why] of [
      ['sgd', 'not Adam or AdamW (its param group has no amsgrad)'],
      ['radam', 'not Adam or AdamW (its param group has no amsgrad)'],
      ['amsgrad', 'it is AMSGrad (a third moment ctl does not keep)'],
      ['groups', 'it has 2 param groups: which parameter each state entry is, the file does not say'],
      [
        'frozen',
        'its param group holds 8 of the 9 parameters: which parameter each state entry is, the file does not say',
      ],
      ['reordered', "the moments of state entry 0 are not temperature's shape"],
      ['overflowed', 'the moments of scene_encoder.0.weight hold values that are not finite'],
      ['uneven', 'the parameters stepped different numbers of times (1, 2)'],
    ]) {
      const imported = ctl('import', '--checkpoint', join(dir, `v1-${name}.pt`), '--run', `v1-${name}`, '--json');
      expect(imported.status, imported.stderr).toBe(0);
      expect(JSON.parse(imported.stdout), name).toMatchObject({ arch: 'v1', optimizerSteps: null });
      expect(imported.stderr, name).toContain(`no optimizer state taken (${why}): training starts Adam afresh`);
    }
  });

  it('--split scene records the split the weights trained on, so eval counts none of its test scenes as seen', async () => {
    const imported = ctl(
      'import',
      '--checkpoint',
      join(dir, 'v2-dict.pt'),
      '--run',
      'v2-scene-import',
      '--split',
      'scene',
    );
    expect(imported.status, imported.stderr).toBe(0);
    const evaluated = ctl('eval', '--run', 'v2-scene-import', '--protocol', 'catalog', '--json');
    expect(evaluated.status, evaluated.stderr).toBe(0);
    expect(JSON.parse(evaluated.stdout)[0].trainSceneOverlap).toBe(0);
    const asSeed = ctl('eval', '--run', 'v2-dict', '--protocol', 'catalog', '--json');
    expect(JSON.parse(asSeed.stdout)[0].trainSceneOverlap).toBeGreaterThan(0);
  });

  it("ctl eval on an imported checkpoint gives the reference's own evaluation loop's seed metrics", async () => {
    for (const name of ['v2-dict', 'v2-bare', 'v1-dict']) {
      const evaluated = ctl('eval', '--run', name, '--protocol', 'seed', '--json');
      expect(evaluated.status, evaluated.stderr).toBe(0);
      const [report] = JSON.parse(evaluated.stdout);
      const reference = JSON.parse(
        await runPython(REFERENCE_EVAL, [join(dir, `${name}.pt`), dir, workdirPaths(workdir).rawCategories('fashion')]),
      );
      expect(report.metrics.queries, name).toBe(reference.queries);
      expect(report.metrics.ties ?? 0, name).toBe(0);
      for (const k of ['1', '5', '10', '50'])
        expect(report.metrics.recall[k], `${name} R@${k}`).toBe(reference.recall[k]);
      expect(report.metrics.mrr, name).toBeCloseTo(reference.mrr, 10);
    }
  });

  it("ctl serve's recommender opens an imported run and ranks the catalog with it", async () => {
    const recommender = await Recommender.open(workdir, 'v2-dict');
    try {
      const scene = recommender.pickerScenes[0];
      const { results, truth } = await recommender.recommendScene(scene.sig, 5, null);
      expect(results).toHaveLength(5);
      for (let i = 1; i < results.length; i++) expect(results[i - 1].score).toBeGreaterThanOrEqual(results[i].score);
      expect(truth.map((t) => t.product)).toEqual(scene.items.map((it) => it.product));
    } finally {
      await recommender.close();
    }
  });

  it('exits 2 on a bad file, naming the key, the shapes, the category or the dimension', async () => {
    const attempt = (file: string, ...extra: string[]) =>
      ctl('import', '--checkpoint', join(dir, file), '--run', file.replace('.pt', ''), ...extra);
    const shape = attempt('bad-shape.pt');
    expect(shape.status).toBe(2);
    expect(shape.stderr).toMatch(/product_encoder\.0\.weight: shape \[20,24\] found, \[20,29\] expected/);
    const missing = attempt('bad-missing.pt');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/scene_encoder\.5\.norm\.bias: missing \(expected shape \[20\]\)/);
    const nan = attempt('bad-nan.pt');
    expect([nan.status, nan.stderr]).toEqual([
      2,
      expect.stringMatching(
        /model_state_dict: scene_encoder\.0\.weight: value \[1,2\] is NaN, expected finite numbers/,
      ),
    ]);
    const rows = attempt('bad-rows.pt');
    expect([rows.status, rows.stderr]).toEqual([
      2,
      expect.stringMatching(/cat_to_idx\['.+'\]: row 0 is already '.+'s; expected one row per category/),
    ]);
    const category = attempt('bad-category.pt');
    expect(category.status).toBe(2);
    const lastLeaf = dataset.categories.map((c) => c.name).at(-1);
    expect(category.stderr).toContain(`category '${lastLeaf}'`);
    expect(category.stderr).toMatch(/is not in the 4 categories of .*bad-category\.pt/);
    const dim = attempt('bad-dim.pt');
    expect(dim.status).toBe(2);
    expect(dim.stderr).toMatch(
      /the towers take 20-d embeddings; no store fits .*'test-planted' \(24-d\).*give --model NAME/,
    );
    // Looking for a store: a stray file among the stores is passed over, a damaged store's meta.json is named.
    const embeddings = join(workdir, 'embeddings');
    await writeFile(join(embeddings, 'notes.txt'), 'not a store');
    expect(attempt('bad-dim.pt').stderr).toMatch(/no store fits .*'test-planted' \(24-d\)\): give --model NAME/);
    await mkdir(join(embeddings, 'broken', 'products'), { recursive: true });
    await writeFile(join(embeddings, 'broken', 'products', 'meta.json'), '{"model": "broken"}');
    try {
      const damaged = attempt('bad-dim.pt');
      expect([damaged.status, damaged.stderr]).toEqual([2, expect.stringMatching(/broken\/products\/meta\.json.*dim/)]);
    } finally {
      await rm(join(embeddings, 'broken'), { recursive: true });
      await rm(join(embeddings, 'notes.txt'));
    }
    const named = attempt('bad-dim.pt', '--model', TEST_MODEL);
    expect(named.status).toBe(2);
    expect(named.stderr).toMatch(/the towers take 20-d inputs .* but the 'test-planted' embeddings .* are 24-d/);
    const notTorch = ctl('import', '--checkpoint', join(dir, 'val-leaves.json'), '--run', 'x');
    expect(notTorch.status).toBe(2);
    expect(notTorch.stderr).toMatch(/not a torch\.save file/);
    const again = ctl('import', '--checkpoint', join(dir, 'v1-bare.pt'), '--run', 'v1-bare');
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/run 'v1-bare' already exists/);
    // A run a trainer holds (here this process) is not imported into.
    const trainer = await lockRun(workdirPaths(workdir).run('held'));
    try {
      const held = ctl('import', '--checkpoint', join(dir, 'v1-bare.pt'), '--run', 'held');
      expect([held.status, held.stderr]).toEqual([2, expect.stringContaining(`run 'held' is in use by process`)]);
    } finally {
      await trainer.release();
    }
    for (const file of ['bad-shape', 'bad-missing', 'bad-nan', 'bad-rows', 'bad-category', 'bad-dim', 'x', 'held'])
      await expect(readFile(join(workdirPaths(workdir).run(file), 'config.json'))).rejects.toThrow();
  });
});
