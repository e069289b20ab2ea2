// `ctl import --embeddings` (built binary, `npm run build` first) on files NumPy writes as the reference does: a
// pickled dict {signature: float32 vector} (protocols 2 and 5) and an .npz of the same; bad files exit 2.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../src/data/stl/dataset-io.js';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { workdirPaths } from '../src/data/workdir.js';
import { ctl, runPython, skipWithoutTorch } from './torch-python.js';

let workdir: string;
let vectors: Record<string, Record<string, number[]>>;
const DIM = 8;

// Writes each kind's vectors in the reference's formats; `bad.*` are the files ctl must refuse.
const WRITE_EMBEDDINGS = String.raw`
import json, pickle, sys, numpy as np
out, dim = sys.argv[1], int(sys.argv[2])
sigs = json.load(open(out + "/sigs.json"))
rng = np.random.default_rng(0)
vec = {kind: {s: rng.standard_normal(dim).astype(np.float32) for s in names} for kind, names in sigs.items()}
vec["scenes"]["f" * 32] = rng.standard_normal(dim).astype(np.float32)  # a scene the dataset does not have
with open(out + "/scenes.pkl", "wb") as f: pickle.dump(vec["scenes"], f, protocol=2)
np.savez(out + "/products.npz", **vec["products"])
with open(out + "/products-p5.pkl", "wb") as f: pickle.dump(vec["products"], f, protocol=5)
some = dict(list(vec["scenes"].items())[:3])
with open(out + "/scenes-changed.pkl", "wb") as f: pickle.dump({k: v + 1 for k, v in some.items()}, f)
with open(out + "/bad-dim.pkl", "wb") as f: pickle.dump({k: np.zeros(dim * 2, np.float32) for k in some}, f)
with open(out + "/bad-shape.pkl", "wb") as f: pickle.dump({**some, "odd": np.zeros(dim - 1, np.float32)}, f)
with open(out + "/bad-f64.pkl", "wb") as f: pickle.dump({k: v.astype(np.float64) for k, v in some.items()}, f)
with open(out + "/bad-empty.pkl", "wb") as f: pickle.dump({k: np.zeros(0, np.float32) for k in some}, f)
np.savez(out + "/bad-none.npz")
with open(out + "/bad-object.pkl", "wb") as f: pickle.dump({k: np.array([1, "x"], dtype=object) for k in some}, f)
with open(out + "/bad-nan.pkl", "wb") as f: pickle.dump({**some, "nan": np.full(dim, np.nan, np.float32)}, f)
import torch
tensors = {k: torch.from_numpy(v) for k, v in some.items()}
with open(out + "/bad-torch.pkl", "wb") as f: pickle.dump(tensors, f)
torch.save(tensors, out + "/bad-torch.pt")
print(json.dumps({kind: {s: v.tolist() for s, v in d.items()} for kind, d in vec.items()}))
`;

beforeAll(async () => {
  if (skipWithoutTorch) return;
  workdir = await mkdtemp(join(tmpdir(), 'ctl-import-'));
  const synth = await ctl(['data', 'synth', '--workdir', workdir, '--scenes', '30', '--products', '40']);
  expect(synth.code, synth.stderr).toBe(0);
  const dataset = await loadDataset(workdir);
  const sigs = { scenes: dataset.scenes.map((s) => s.sig), products: dataset.products.map((p) => p.sig) };
  await writeFile(join(workdir, 'sigs.json'), JSON.stringify(sigs));
  vectors = JSON.parse(await runPython(WRITE_EMBEDDINGS, [workdir, String(DIM)]));
}, 120_000);
afterAll(async () => {
  if (workdir) await rm(workdir, { recursive: true, force: true });
});

function importArgs(file: string, kind: string, model: string, ...rest: string[]): string[] {
  return [
    'import',
    '--workdir',
    workdir,
    '--embeddings',
    join(workdir, file),
    '--kind',
    kind,
    '--model',
    model,
    ...rest,
  ];
}

async function expectStore(model: string, view: 'products' | 'scenes-full', want: Record<string, number[]>) {
  const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings(model, view));
  expect(store.dim).toBe(DIM);
  expect(store.ids().sort()).toEqual(Object.keys(want).sort());
  const { data } = await store.read(Object.keys(want));
  expect(Array.from(data)).toEqual(Object.values(want).flat());
}

describe.skipIf(skipWithoutTorch)('ctl import --embeddings (real NumPy files)', () => {
  it('imports a protocol-2 .pkl of scenes into scenes-full with identical rows; a re-run adds nothing', async () => {
    const run = await ctl([...importArgs('scenes.pkl', 'scenes', 'ref-model'), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ view: 'scenes-full', dim: DIM, imported: 31, alreadyStored: 0, notInDataset: 1 });
    await expectStore('ref-model', 'scenes-full', vectors.scenes);

    const again = await ctl([...importArgs('scenes.pkl', 'scenes', 'ref-model'), '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ imported: 0, alreadyStored: 31 });

    // Other vectors for ids the store holds are refused, not passed over: the store keeps one vector per id.
    const changed = await ctl(importArgs('scenes-changed.pkl', 'scenes', 'ref-model'));
    const first = Object.keys(vectors.scenes)[0];
    expect([changed.code, changed.stderr]).toEqual([
      2,
      expect.stringMatching(new RegExp(`scenes-changed\\.pkl: ${first}: .*holds another vector for it.*--model`)),
    ]);
    await expectStore('ref-model', 'scenes-full', vectors.scenes);
  });

  it('imports an .npz and a protocol-5 .pkl of products with identical rows', async () => {
    const npz = await ctl(importArgs('products.npz', 'products', 'ref-model'));
    expect(npz.code, npz.stderr).toBe(0);
    await expectStore('ref-model', 'products', vectors.products);
    const p5 = await ctl(importArgs('products-p5.pkl', 'products', 'other-model'));
    expect(p5.code, p5.stderr).toBe(0);
    await expectStore('other-model', 'products', vectors.products);
  });

  it('refuses bad files with exit 2 and a message naming the problem', async () => {
    const cases: [string[], RegExp][] = [
      [
        importArgs('bad-dim.pkl', 'scenes', 'other-model'),
        /16-d vectors, but the products embeddings of 'other-model'.*are 8-d/,
      ],
      [importArgs('bad-shape.pkl', 'scenes', 'new-model'), /odd: shape \[7\], expected \[8\]/],
      [importArgs('bad-f64.pkl', 'scenes', 'new-model'), /dtype <f8, expected float32/],
      [importArgs('bad-nan.pkl', 'scenes', 'new-model'), /nan: value 0 is NaN, expected finite numbers/],
      [importArgs('bad-empty.pkl', 'scenes', 'new-model'), /: shape \[0\], expected \[D\] with D ≥ 1/],
      [importArgs('bad-none.npz', 'scenes', 'new-model'), /bad-none\.npz: no embeddings in the file/],
      [
        importArgs('bad-object.pkl', 'scenes', 'new-model'),
        /bad-object\.pkl: ndarray: data is a list\/tuple \(an object array\?\)/,
      ],
      [importArgs('bad-torch.pkl', 'scenes', 'new-model'), /torch tensors are not read here; save .*\.numpy\(\)/],
      [importArgs('bad-torch.pt', 'scenes', 'new-model'), /a torch\.save file, not an \.npz .*\.numpy\(\)/],
      [importArgs('sigs.json', 'scenes', 'new-model'), /neither a pickle nor an \.npz/],
      [
        importArgs('products.npz', 'scenes', 'new-model'),
        new RegExp(`none of its ${Object.keys(vectors.products).length} signatures is a scene`),
      ],
      [['import', '--workdir', workdir, '--embeddings', join(workdir, 'scenes.pkl'), '--model', 'm'], /--kind/],
      [['import', '--workdir', workdir], /nothing to import: give --checkpoint FILE or --embeddings FILE/],
      // Flags of the other kind of import would do nothing.
      [importArgs('scenes.pkl', 'scenes', 'new-model', '--run', 'r'), /--run: only with --checkpoint/],
      [
        ['import', '--workdir', workdir, '--checkpoint', join(workdir, 'bad-torch.pt'), '--kind', 'scenes'],
        /--kind: only with --embeddings/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await ctl(args);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    // None of them made a store of its own.
    expect(await readdir(join(workdir, 'embeddings'))).not.toContain('new-model');
  });
});
