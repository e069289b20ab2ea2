// `ctl export` as a user runs it (node dist/cli.js; `npm run build` first): every file checked against the run's
// own checkpoint and forward (the safetensors tensors, the ONNX towers in onnxruntime on other batch sizes, the
// product index), the model card, exit codes, and the folder replaced whole. With the real PyTorch:
// export-torch.test.ts.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { decodeNpy } from '../src/data/store/npy.js';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { workdirPaths } from '../src/data/workdir.js';
import { checkOnnxTowers } from '../src/export/check-onnx.js';
import { buildProductIndex } from '../src/export/product-index.js';
import { towerOnnx } from '../src/model/onnx-tower.js';
import { trainConfigSchema } from '../src/train/config.js';
import { loadTrainedModel, type TrainedModel } from '../src/model/load.js';
import { decodeSafetensors } from '../src/model/safetensors.js';
import { TwoTower } from '../src/model/two-tower.js';
import { RunError } from '../src/util/errors.js';
import { acquireLock } from '../src/util/lock.js';
import { keyedRandom } from '../src/util/random.js';
import { ctlIn, trainedWorkdir } from './export-fixtures.js';
import { canMount, onTmpfs } from './mount.js';
import { TEST_MODEL } from './train-fixtures.js';

let workdir = '';
let dataset: Dataset;
let out = '';
let ctl: ReturnType<typeof ctlIn>;
const models: Record<string, TrainedModel> = {};

beforeAll(async () => {
  ({ workdir, dataset } = await trainedWorkdir(11));
  ctl = ctlIn(workdir);
  out = await mkdtemp(join(tmpdir(), 'ctl-export-'));
  // The tfjs forward: the reference the exported files are checked against (the CLI's towers run on onnxruntime).
  for (const run of ['v1', 'v2'])
    models[run] = await loadTrainedModel(workdirPaths(workdir).run(run), 'best', {
      backend: 'wasm',
      config: trainConfigSchema,
    });
}, 240_000);

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
  await rm(out, { recursive: true, force: true });
});

const gaussian = (n: number, seed: number) => {
  const rng = keyedRandom(seed, 'export-test');
  return Float32Array.from({ length: n }, () => rng.normal());
};

async function onnxRun(file: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  try {
    const result = await session.run(feeds);
    return result[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
};

describe('ctl export', () => {
  it('writes the reference state_dict, both ONNX towers, the product index and the card, each matching the run', async () => {
    const dir = join(out, 'v2');
    const run = ctl('export', '--run', 'v2', '--format', 'all', '--out', dir, '--json');
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ run: 'v2', checkpoint: { which: 'best' }, out: dir });
    expect(summary.onnxDifference.scene).toBeLessThan(1e-5);
    expect(run.stderr).toMatch(/ONNX checked against tfjs/);
    const names = (await readdir(dir)).sort();
    expect(names).toEqual(expect.arrayContaining(['config.json', 'model-card.md', 'model.pt', 'model.safetensors']));
    expect(names).toEqual(
      expect.arrayContaining(['product_index.jsonl', 'product_index.npy', 'product_tower.onnx', 'scene_tower.onnx']),
    );
    const model = models.v2;

    // config.json: architecture, dims, categories, embedding model and view, the reference class.
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architecture: 'v2',
      dims: { input: 24, hidden: 32, out: 16, blocks: 1, category: 4 },
      cat_to_idx: model.state.categoryMap.cat_to_idx,
      num_categories: 4,
      embeddings: { model: TEST_MODEL, dim: 24, sceneView: 'full' },
      reference: {
        name: 'CTLModelV2',
        kwargs: { input_dim: 24, hidden_dim: 32, output_dim: 16, num_categories: 4, category_dim: 4, num_blocks: 1 },
      },
    });
    for (const c of config.categories) expect(c.row).toBe(model.state.categoryMap.cat_to_idx[c.name]);

    // model.safetensors: the checkpoint's tensors, bit for bit, in the reference's key order, with cat_to_idx.
    const exported = decodeSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))), 'export');
    const ckptFile = join(workdirPaths(workdir).run('v2'), 'checkpoints', 'best', 'model.safetensors');
    const checkpoint = decodeSafetensors(new Uint8Array(await readFile(ckptFile)), ckptFile);
    expect(Object.keys(exported.tensors)).toEqual(Object.keys(checkpoint.tensors));
    expect(Object.keys(exported.tensors).slice(0, 3)).toEqual([
      'log_temperature',
      'category_embedding.weight',
      'scene_encoder.0.weight',
    ]);
    for (const [name, t] of Object.entries(checkpoint.tensors)) {
      expect(exported.tensors[name].shape, name).toEqual(t.shape);
      expect(Buffer.from(exported.tensors[name].data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    }
    expect(JSON.parse(exported.metadata.cat_to_idx)).toEqual(model.state.categoryMap.cat_to_idx);

    // The ONNX towers in onnxruntime, at batch sizes other than the export's check, against the tfjs forward.
    const rows = 5;
    const x = gaussian(rows * 24, 1);
    const categories = Int32Array.from({ length: rows }, (_, i) => i % 4);
    const scene = await onnxRun(join(dir, 'scene_tower.onnx'), {
      scene_embedding: new ort.Tensor('float32', x, [rows, 24]),
    });
    expect(maxDiff(scene, await model.encodeScenes(x, rows))).toBeLessThan(1e-5);
    const product = await onnxRun(join(dir, 'product_tower.onnx'), {
      product_embedding: new ort.Tensor('float32', x, [rows, 24]),
      category: new ort.Tensor('int64', BigInt64Array.from(categories, BigInt), [rows]),
    });
    expect(maxDiff(product, await model.encodeProducts(x, categories, rows))).toBeLessThan(1e-5);
    const one = await onnxRun(join(dir, 'scene_tower.onnx'), {
      scene_embedding: new ort.Tensor('float32', x.subarray(0, 24), [1, 24]),
    });
    expect(maxDiff(one, scene.subarray(0, 16))).toBeLessThan(1e-6);

    // The product index: every catalog product through the product tower, one JSON line per row.
    const index = decodeNpy(new Uint8Array(await readFile(join(dir, 'product_index.npy'))));
    expect(index.shape).toEqual([dataset.products.length, 16]);
    const lines = (await readFile(join(dir, 'product_index.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(dataset.products.map((p) => p.sig));
    const rowOf = model.categoryRows(dataset.categories);
    lines.forEach((l, i) => {
      const category = dataset.categories[dataset.products[i].category];
      expect(l).toMatchObject({ row: i, category: category.name, categoryPath: category.path });
      expect(l.categoryRow).toBe(rowOf[category.index]);
      expect(l.url).toBe(
        `http://i.pinimg.com/400x/${l.id.slice(0, 2)}/${l.id.slice(2, 4)}/${l.id.slice(4, 6)}/${l.id}.jpg`,
      );
    });
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings(TEST_MODEL, 'products'));
    const inputs = await store.read(lines.map((l) => l.id));
    const expected = await model.encodeProducts(
      inputs.data,
      Int32Array.from(lines, (l) => l.categoryRow),
      lines.length,
    );
    expect(maxDiff(index.data, expected)).toBeLessThan(1e-5); // written by the onnxruntime towers

    // The card: data, embeddings, the run's eval metrics per protocol, a loading snippet per written format.
    const card = await readFile(join(dir, 'model-card.md'), 'utf8');
    expect(card).toMatch(/SYNTHETIC/);
    expect(card).toContain(`\`${TEST_MODEL}\`, 24-d; scene view \`full\``);
    for (const protocol of ['seed', 'catalog', 'category']) {
      const part = protocol === 'seed' ? 'val' : 'test';
      const report = JSON.parse(
        await readFile(join(workdirPaths(workdir).run('v2'), 'eval', `${protocol}-${part}.json`), 'utf8'),
      );
      const line = card.split('\n').find((l) => l.startsWith(`${protocol} (`));
      expect(line, protocol).toContain(`${(100 * report.metrics.recall['10']).toFixed(1)}%`);
      expect(line, protocol).toContain(report.metrics.mrr.toFixed(3));
      expect(line, protocol).toContain(`, towers on ${report.backend} `);
    }
    expect(card).toContain("model.load_state_dict(load_file('model.safetensors'), strict=True)");
    expect(card).toContain("ort.InferenceSession('scene_tower.onnx')");
    expect(card).toContain("np.load('product_index.npy')");
  });

  it('leaves a catalog product without an image embedding out of the product index, counting it', async () => {
    const unembedded = { sig: 'f'.repeat(32), category: 0 }; // sorts last, as dataset.products are sorted
    const withUnembedded = { ...dataset, products: [...dataset.products, unembedded] };
    const index = await buildProductIndex(workdir, withUnembedded, models.v2);
    expect(index.products).toEqual(dataset.products.map((_, j) => j));
    expect(index.skipped).toBe(1);
    expect(index.vectors.length).toBe(dataset.products.length * models.v2.spec.out);
  });

  it('exports a v1 run: the reference CTLModel, a product tower without category input', async () => {
    const dir = join(out, 'v1');
    const run = ctl('export', '--run', 'v1', '--format', 'all', '--out', dir);
    expect(run.status, run.stderr).toBe(0);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(config.reference).toEqual({
      name: 'CTLModel',
      kwargs: { input_dim: 24, hidden_dim: 24, output_dim: 12, dropout: 0.2, temperature: 0.07 },
    });
    expect(config.onnx.product.inputs).toEqual(['product_embedding']);
    const exported = decodeSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))), 'export');
    expect(Object.keys(exported.tensors)).toEqual([
      'temperature',
      'scene_encoder.0.weight',
      'scene_encoder.0.bias',
      'scene_encoder.3.weight',
      'scene_encoder.3.bias',
      'product_encoder.0.weight',
      'product_encoder.0.bias',
      'product_encoder.3.weight',
      'product_encoder.3.bias',
    ]);
    const x = gaussian(3 * 24, 2);
    const product = await onnxRun(join(dir, 'product_tower.onnx'), {
      product_embedding: new ort.Tensor('float32', x, [3, 24]),
    });
    expect(maxDiff(product, await models.v1.encodeProducts(x, new Int32Array(3), 3))).toBeLessThan(1e-5);
    const card = await readFile(join(dir, 'model-card.md'), 'utf8');
    expect(card).toMatch(/No `ctl eval` report of this checkpoint yet: `ctl eval --run v1 --checkpoint best/);
    expect(card).toContain('from torch_two_tower import CTLModel\n');
  });

  it('replaces an earlier export whole, leaving nothing half-written beside it', async () => {
    const dir = join(out, 'again');
    expect(ctl('export', '--run', 'v2', '--format', 'all', '--out', dir).status).toBe(0);
    const again = ctl('export', '--run', 'v2', '--format', 'onnx', '--out', dir, '--checkpoint', 'last');
    expect(again.status, again.stderr).toBe(0);
    const names = await readdir(dir);
    expect(names).not.toContain('model.safetensors');
    expect(names).toContain('scene_tower.onnx');
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).checkpoint.which).toBe('last');
    // The best checkpoint's reports are not the last one's: the card says none is there yet.
    expect(await readFile(join(dir, 'model-card.md'), 'utf8')).toMatch(
      /No `ctl eval` report of this checkpoint yet: `ctl eval --run v2 --checkpoint last/,
    );
    expect((await readdir(out)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });

  it('one export into a folder at a time: a second is refused, naming the first, and the folder stays its', async () => {
    const dir = join(out, 'busy');
    expect(ctl('export', '--run', 'v2', '--format', 'onnx', '--out', dir).status).toBe(0);
    const first = await acquireLock(dir, () => 'busy'); // as an export into it running holds it
    try {
      const second = ctl('export', '--run', 'v2', '--format', 'pt', '--out', dir);
      expect([second.status, second.stderr]).toEqual([
        2,
        expect.stringMatching(new RegExp(`another ctl export into ${dir} is running: process ${process.pid} on`)),
      ]);
    } finally {
      await first.release();
    }
    expect(await readdir(dir)).toContain('scene_tower.onnx');
  });

  it("after a kill between the swap's renames, the next export first puts the previous one back", async () => {
    const dir = join(out, 'swap');
    const killed = ctl('export', '--run', 'v2', '--format', 'safetensors', '--out', dir);
    expect(killed.status).toBe(0);
    // As if that export had stepped an earlier one aside and died before the new folder got its name:
    await rename(dir, join(out, `.old-swap.${killed.pid}.0-0`));
    const store = workdirPaths(workdir).embeddings(TEST_MODEL, 'products');
    await rename(store, `${store}.away`);
    const failed = ctl('export', '--run', 'v2', '--format', 'onnx', '--out', dir);
    await rename(`${store}.away`, store);
    expect(failed.status).toBe(2);
    expect(await readdir(dir)).toContain('model.safetensors');
    expect((await readdir(out)).filter((n) => n.startsWith('.old-') || n.startsWith('.tmp-'))).toEqual([]);
  });

  it("keeps onnxruntime's telemetry off unless the environment turns it on", async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'ctl-ort-'));
    try {
      // Only what a shell gives: vitest sets ORT_DISABLE_TELEMETRY for its workers, and onnxruntime itself keeps
      // quiet where it sees CI markers (CI=true).
      const env = { PATH: process.env.PATH, HOME: process.env.HOME };
      const exportOnnx = (extra: NodeJS.ProcessEnv) =>
        ctlIn(workdir, { ...env, TMPDIR: tmp, ...extra })(
          'export',
          '--run',
          'v2',
          '--format',
          'onnx',
          '--out',
          join(tmp, 'export'),
        );
      // onnxruntime's telemetry writes $TMPDIR/mat-debug-<pid>.log when it starts.
      const debugLogs = async () => (await readdir(tmp)).filter((n) => n.startsWith('mat-debug-'));
      expect(exportOnnx({}).status).toBe(0);
      expect(await debugLogs()).toEqual([]);
      expect(exportOnnx({ ORT_DISABLE_TELEMETRY: '0' }).status).toBe(0);
      expect(await debugLogs()).toHaveLength(1);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  // A Docker volume or any mount point cannot be renamed: the export, written beside its folder and swapped in, is
  // refused before any work, pointing inside it. (Needs a tmpfs mount: root with CAP_SYS_ADMIN, as in CI's container.)
  it.skipIf(!canMount())('refuses a mount point as --out, before writing anything', async () => {
    const volume = join(out, 'volume');
    await mkdir(volume);
    await onTmpfs(volume, 'size=16m', async () => {
      const refused = ctl('export', '--run', 'v2', '--format', 'safetensors', '--out', volume);
      expect([refused.status, refused.stderr]).toEqual([
        2,
        expect.stringMatching(/--out .*volume: a mount point .* give a folder inside it, e\.g\. --out .*volume\/v2/),
      ]);
      expect(await readdir(volume)).toEqual([]);
      expect((await readdir(out)).filter((name) => name.includes('volume'))).toEqual(['volume']);
      expect(ctl('export', '--run', 'v2', '--format', 'safetensors', '--out', join(volume, 'v2')).status).toBe(0);
    });
  });

  it('exits 2 naming what is missing or refused', async () => {
    // A refusal about the run or the flags comes before --out's folder is made (the default's is ./checkpoints).
    const notMade = join(out, 'not-made');
    const missing = ctl('export', '--run', 'nope', '--out', join(notMade, 'nope'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--run nope: no such run in .*runs \(runs: [^)]+\)/);
    const misfit = ctl('export', '--run', 'v2', '--format', 'onnx', '--with-optimizer', '--out', join(notMade, 'v2'));
    expect([misfit.status, misfit.stderr]).toEqual([2, expect.stringMatching(/--with-optimizer .* --format pt/)]);
    expect(existsSync(notMade)).toBe(false);

    await mkdir(join(workdirPaths(workdir).run('empty')), { recursive: true });
    const untrained = ctl('export', '--run', 'empty', '--out', join(out, 'empty'));
    expect(untrained.status).toBe(2);
    expect(untrained.stderr).toMatch(/no 'best' checkpoint in .*empty/);

    const mine = join(out, 'my-files');
    await mkdir(mine);
    await writeFile(join(mine, 'notes.txt'), 'keep me');
    const refused = ctl('export', '--run', 'v2', '--out', mine);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/my-files: the folder exists and is not a `ctl export` folder/);
    expect(await readFile(join(mine, 'notes.txt'), 'utf8')).toBe('keep me');

    const best = ctl('export', '--run', 'v2', '--format', 'pt', '--with-optimizer', '--out', join(out, 'opt'));
    expect(best.status).toBe(2);
    expect(best.stderr).toMatch(/the 'best' checkpoint of this run keeps no optimizer state .*--checkpoint last/);
    const onnxOnly = ctl('export', '--run', 'v2', '--format', 'onnx', '--with-optimizer', '--out', join(out, 'opt'));
    expect(onnxOnly.status).toBe(2);
    expect(onnxOnly.stderr).toMatch(/--with-optimizer .* use it with --format pt or all/);
    expect(ctl('export', '--run', 'v2', '--format', 'tfjs').status).toBe(2);
    await writeFile(join(out, 'a-file'), 'x');
    const toFile = ctl('export', '--run', 'v2', '--out', join(out, 'a-file'));
    expect([toFile.status, toFile.stderr]).toEqual([2, expect.stringMatching(/--out .*a-file: a file, not a folder/)]);
    expect(ctl('export').stderr).toMatch(/--run NAME is required/);

    // A damaged eval report is named, not printed as NaN in the card (or a crash).
    const reportFile = join(workdirPaths(workdir).run('v2'), 'eval', 'catalog-test.json');
    const report = await readFile(reportFile, 'utf8');
    try {
      await writeFile(reportFile, JSON.stringify({ ...JSON.parse(report), metrics: { recall: { 10: 'high' } } }));
      const damaged = ctl('export', '--run', 'v2', '--format', 'safetensors', '--out', join(out, 'damaged'));
      expect(damaged.status).toBe(2);
      expect(damaged.stderr).toMatch(/catalog-test\.json: metrics\.queries: expected a count/);
    } finally {
      await writeFile(reportFile, report);
    }
  });

  it('fails an ONNX file that does not compute the tfjs forward', async () => {
    const model = models.v2;
    const tower = new TwoTower(model.spec);
    const drifted = Float32Array.from(model.params, (v) => v * 1.001);
    const files = {
      scene: towerOnnx(tower, drifted, 'scene'),
      product: towerOnnx(tower, model.params, 'product'),
    };
    const x = gaussian(8 * 24, 3);
    await expect(checkOnnxTowers(model, files, x, new Int32Array(8), 8)).rejects.toThrow(RunError);
    await expect(checkOnnxTowers(model, files, x, new Int32Array(8), 8)).rejects.toThrow(
      /the scene tower in onnxruntime differs from the tfjs forward by .* \(max abs, tolerance 0.00001\)/,
    );
    files.scene = towerOnnx(tower, model.params, 'scene');
    const fine = await checkOnnxTowers(model, files, x, new Int32Array(8), 8);
    expect(fine.scene).toBeLessThan(1e-5);
  });
});
