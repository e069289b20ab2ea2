// The local provider end to end through the real transformers.js path, with the generated tiny SigLIP-shaped
// model: loading from a folder with remote loading off, the views, hide-product, skips, resume, dtypes, shards.
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, test } from 'vitest';
import { EmbeddingStore, sceneProductKey } from '../src/data/store/embeddings.js';
import { ensureGeneratedModel, GENERATED_PRESETS } from '../src/embed/generated-models.js';
import { loadLocalEncoder } from '../src/embed/local-encoder.js';
import { resolveModel } from '../src/embed/model-source.js';
import { planJobs } from '../src/embed/jobs.js';
import { planViews, runView } from '../src/embed/pipeline.js';
import { lockStore, runEmbed } from '../src/embed/run.js';
import { openUploadEmbedder } from '../src/serve/upload.js';
import { buildVisionTower } from '../src/embed/vision-transformer.js';
import { workdirPaths } from '../src/data/workdir.js';
import {
  compareVectors,
  embedOptions,
  FP16_TOLERANCE,
  makeFixture,
  removeFixtures,
  storeRows,
  writeImage,
} from './embed-fixtures.js';

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);

describe('ctl embed, local provider (tiny model)', () => {
  afterAll(removeFixtures);

  test('products and whole scenes: one unit-norm row each, from a local folder with remote loading off', async () => {
    const { workdir, dataset } = await makeFixture(3);
    const summary = await runEmbed(embedOptions(workdir));
    expect(summary.views.map((v) => [v.view, v.embedded, v.failed.length])).toEqual([
      ['products', 6, 0],
      ['scenes-full', 3, 0],
    ]);
    const products = await storeRows(workdir, 'products');
    expect([...products.keys()].sort()).toEqual(dataset.products.map((p) => p.sig));
    for (const v of products.values()) {
      expect(v.length).toBe(32);
      expect(dot(v, v)).toBeCloseTo(1, 5);
    }
    const scenes = await storeRows(workdir, 'scenes-full');
    expect([...scenes.keys()].sort()).toEqual(dataset.scenes.map((s) => s.sig).sort());
    const { env } = await import('@huggingface/transformers');
    expect(env.allowRemoteModels).toBe(false);

    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('tiny', 'products'));
    expect(store.meta).toMatchObject({ model: 'tiny', revision: 'generated-v2', dim: 32, view: 'products' });
    expect(store.meta.preprocessing).toMatchObject({
      processor: 'SiglipImageProcessor',
      dtype: 'fp32',
      output: 'pooler_output',
    });

    // The same model as a plain folder (any name) loads through the same path and gives the same vectors.
    const copy = join(workdir, 'my-model');
    await cp(join(workdirPaths(workdir).modelsDir, 'tiny'), copy, { recursive: true });
    await runEmbed(embedOptions(workdir, { model: copy, kind: 'products' }));
    const fromFolder = await storeRows(workdir, 'products', 'my-model');
    for (const [id, v] of products) expect(Array.from(fromFolder.get(id)!)).toEqual(Array.from(v));
    // The store says where the folder is, and serve opens it from there, whatever its current folder.
    const folderStore = await EmbeddingStore.open(workdirPaths(workdir).embeddings('my-model', 'products'));
    expect(folderStore.meta).toMatchObject({ model: 'my-model', location: copy });
    expect(store.meta.location).toBeUndefined(); // a generated model is found by its name
    const uploads = await openUploadEmbedder(workdir, 'my-model', 'cpu');
    expect(uploads.enabled, uploads.enabled ? '' : uploads.reason).toBe(true);
    if (uploads.enabled) await uploads.embedder.dispose();
    // Moved away (a workdir copied to another machine): looked for by its name in the current folder, as before.
    const here = process.cwd();
    await rename(copy, join(workdir, 'elsewhere'));
    await mkdir(join(workdir, 'cwd'));
    await rename(join(workdir, 'elsewhere'), join(workdir, 'cwd', 'my-model'));
    process.chdir(join(workdir, 'cwd'));
    try {
      const byName = await openUploadEmbedder(workdir, 'my-model', 'cpu');
      expect(byName.enabled, byName.enabled ? '' : byName.reason).toBe(true);
      if (byName.enabled) await byName.embedder.dispose();
    } finally {
      process.chdir(here);
    }
  });

  test('the same image gives the same vector; different images differ', async () => {
    const { workdir, dataset } = await makeFixture(2);
    const [p0, p1] = dataset.products.map((p) => workdirPaths(workdir).imageFile('products', p.sig));
    await writeFile(p1, await readFile(p0));
    await runEmbed(embedOptions(workdir, { kind: 'products', batch: 3 }));
    const products = await storeRows(workdir, 'products');
    const [v0, v1, v2] = dataset.products.slice(0, 3).map((p) => products.get(p.sig)!);
    expect(Array.from(v1)).toEqual(Array.from(v0));
    expect(dot(v0, v2)).toBeLessThan(0.9999);
  });

  test('hide-product: one row per scene and product, unlike the whole scene; crop is the region beside the box', async () => {
    const { workdir, dataset } = await makeFixture(2);
    await runEmbed(embedOptions(workdir, { kind: 'scenes' }));
    await runEmbed(embedOptions(workdir, { kind: 'scenes', sceneView: 'hide-product', hide: 'crop' }));
    const full = await storeRows(workdir, 'scenes-full');
    const hidden = await storeRows(workdir, 'scenes-hide-product');
    expect(hidden.size).toBe(4);
    const scene = dataset.scenes[0];
    const [left, right] = scene.items.map((it) => hidden.get(sceneProductKey(scene.sig, it.product))!);
    expect(dot(left, full.get(scene.sig)!)).toBeLessThan(0.9999);
    expect(dot(left, right)).toBeLessThan(0.9999);

    // Box [0.05, 0.1, 0.45, 0.9] of a 96×64 scene covers columns 4..43, so the crop is columns 44..95, all rows.
    const sceneFile = workdirPaths(workdir).imageFile('scenes', scene.sig);
    const cropFile = join(workdir, 'crop.png');
    await writeImage(
      cropFile,
      await sharp(sceneFile).extract({ left: 44, top: 0, width: 52, height: 64 }).png().toBuffer(),
    );
    const source = await resolveModel('tiny', { modelsDir: workdirPaths(workdir).modelsDir });
    const encoder = await loadLocalEncoder(source, {
      device: 'cpu',
      dtype: 'fp32',
      offline: true,
      modelsDir: workdirPaths(workdir).modelsDir,
    });
    const job = { id: 'crop', sig: scene.sig, file: cropFile };
    const [expected] = await encoder.embed([await encoder.prepare(job)], [job]);
    await encoder.dispose();
    const expectedVector = expected as Float32Array;
    for (let i = 0; i < left.length; i++) expect(left[i]).toBeCloseTo(expectedVector[i], 5);

    // Mask mode keeps the whole frame and paints the box: another vector again, in its own store settings.
    const masked = await makeFixture(2);
    await runEmbed(embedOptions(masked.workdir, { kind: 'scenes', sceneView: 'hide-product', hide: 'mask' }));
    const maskRows = await storeRows(masked.workdir, 'scenes-hide-product');
    const maskedLeft = maskRows.get(sceneProductKey(scene.sig, scene.items[0].product))!;
    expect(dot(maskedLeft, left)).toBeLessThan(0.9999);
    // A store written with crop is not extended with mask rows.
    await expect(
      runEmbed(embedOptions(workdir, { kind: 'scenes', sceneView: 'hide-product', hide: 'mask' })),
    ).rejects.toThrow(/preprocessing\.hide/);
  });

  test('missing and undecodable images are skipped, counted and listed; the rest is stored', async () => {
    const { workdir, dataset } = await makeFixture(3);
    const paths = workdirPaths(workdir);
    await rm(paths.imageFile('products', dataset.products[1].sig));
    const jpeg = await readFile(paths.imageFile('scenes', dataset.scenes[0].sig));
    await writeFile(paths.imageFile('products', dataset.products[4].sig), jpeg.subarray(0, 300)); // truncated JPEG
    await writeFile(paths.imageFile('scenes', dataset.scenes[2].sig), 'not an image');
    const summary = await runEmbed(embedOptions(workdir));
    const [products, scenes] = summary.views;
    expect(products.embedded).toBe(4);
    expect(products.failed.map((f) => [f.id, f.reason])).toEqual([
      [dataset.products[1].sig, 'missing'],
      [dataset.products[4].sig, 'undecodable'],
    ]);
    expect(scenes.failed.map((f) => [f.id, f.reason])).toEqual([[dataset.scenes[2].sig, 'undecodable']]);
    expect(summary.failed).toBe(3);
    // A re-run tries only the failed ones again.
    const again = await runEmbed(embedOptions(workdir));
    expect(again.views.map((v) => [v.alreadyStored, v.embedded, v.failed.length])).toEqual([
      [4, 0, 2],
      [2, 0, 1],
    ]);
  });

  test('--limit, then a re-run continues without duplicates; .npy shards load in numpy', async () => {
    const { workdir } = await makeFixture(4);
    const first = await runEmbed(embedOptions(workdir, { kind: 'products', limit: 3, batch: 2 }));
    expect(first.views[0].embedded).toBe(3);
    const second = await runEmbed(embedOptions(workdir, { kind: 'products', batch: 2 }));
    expect([second.views[0].alreadyStored, second.views[0].embedded, second.views[0].stored]).toEqual([3, 5, 8]);
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('tiny', 'products'));
    expect(await store.verify()).toMatchObject({ ok: true, count: 8, dim: 32 });

    const script = [
      'import glob, json, sys, numpy as np',
      'files = sorted(glob.glob(sys.argv[1] + "/shards/*.npy"))',
      'arrays = [np.load(f) for f in files]',
      'm = np.concatenate(arrays)',
      'print(json.dumps({"dtype": str(m.dtype), "shape": list(m.shape), "norm_err": float(np.abs(np.linalg.norm(m, axis=1) - 1).max())}))',
    ].join('\n');
    const out = JSON.parse(execFileSync('python3', ['-c', script, store.dir], { encoding: 'utf8' }));
    expect(out.dtype).toBe('float32');
    expect(out.shape).toEqual([8, 32]);
    expect(out.norm_err).toBeLessThan(1e-5);
  });

  test('a generated model made by several at once: each gets the folder that stays, none is swapped away', async () => {
    const modelsDir = await mkdtemp(join(tmpdir(), 'ctl-generated-'));
    try {
      // Each call checks for the folder before any has written it, so all generate; a folder one caller was given
      // must not be replaced by a later one (that caller may be reading it: a 'missing' file between two renames).
      const given = await Promise.all(
        [0, 1, 2, 3].map(async () => (await stat(await ensureGeneratedModel(modelsDir, 'tiny'))).ino),
      );
      const final = (await stat(join(modelsDir, 'tiny'))).ino;
      expect(given).toEqual([final, final, final, final]);
      expect((await readdir(modelsDir)).sort()).toEqual(['tiny']);
    } finally {
      await rm(modelsDir, { recursive: true, force: true });
    }
  });

  test('--shard I/N: the shards split the rows and write side by side', async () => {
    const { workdir, dataset } = await makeFixture(4);
    const [a, b] = await Promise.all(
      [0, 1].map((index) => runEmbed(embedOptions(workdir, { kind: 'products', shard: { index, count: 2 } }))),
    );
    expect(a.views[0].embedded + b.views[0].embedded).toBe(dataset.products.length);
    expect(a.views[0].embedded).toBeGreaterThan(0);
    expect(b.views[0].embedded).toBeGreaterThan(0);
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('tiny', 'products'));
    expect(store.size).toBe(dataset.products.length);
    expect(await store.verify()).toMatchObject({ ok: true });
  });

  test('shards started together with another --dtype: the store keeps one dtype, the other shard is refused', async () => {
    const { workdir } = await makeFixture(4);
    // Neither finds the store when it plans; the later one to commit finds it then, written with the other dtype.
    const runs = await Promise.allSettled(
      (['fp32', 'q8'] as const).map((dtype, index) =>
        runEmbed(embedOptions(workdir, { kind: 'products', dtype, shard: { index, count: 2 } })),
      ),
    );
    expect(runs.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = runs.find((r) => r.status === 'rejected')!;
    expect(String(refused.reason)).toMatch(/preprocessing\.dtype: the store was written with "(fp32|q8)"/);
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('tiny', 'products'));
    const kept = runs.findIndex((r) => r.status === 'fulfilled');
    expect(store.meta.preprocessing).toMatchObject({ dtype: ['fp32', 'q8'][kept] });
    const shards = (await readdir(join(store.dir, 'shards'))).filter((f) => f.endsWith('.npy'));
    expect(shards.filter((f) => !f.startsWith(`s${kept}of2-`))).toEqual([]); // no row of the refused dtype
  });

  test('rows another writer stored after this run planned (a shard and the whole at once) are left to it', async () => {
    const { workdir, dataset } = await makeFixture(4);
    const paths = workdirPaths(workdir);
    const source = await resolveModel('tiny', { modelsDir: paths.modelsDir });
    const encoder = await loadLocalEncoder(source, {
      device: 'cpu',
      dtype: 'fp32',
      offline: true,
      modelsDir: paths.modelsDir,
    });
    try {
      const plans = planJobs(dataset, workdir, embedOptions(workdir, { kind: 'products' }), (view) =>
        paths.embeddings(encoder.model, view),
      );
      const [planned] = await planViews(plans, encoder, () => ({})); // no store yet: every product to embed
      // Meanwhile a shard's run makes the store and commits its half.
      const shard = await runEmbed(embedOptions(workdir, { kind: 'products', shard: { index: 0, count: 2 } }));
      const whole = await runView(planned, encoder, {}, { batch: 4, prefetch: 2, commitEvery: 1, writer: 'w' });
      expect(shard.views[0].embedded + whole.embedded).toBe(dataset.products.length);
      const store = await EmbeddingStore.open(paths.embeddings('tiny', 'products'));
      expect([store.size, whole.stored]).toEqual([dataset.products.length, dataset.products.length]);
    } finally {
      await encoder.dispose();
    }
  });

  test('a store another ctl embed is writing (the same shard, or the whole) is refused, naming its process', async () => {
    const { workdir, dataset } = await makeFixture(2);
    const dir = workdirPaths(workdir).embeddings('tiny', 'products');
    const other = await lockStore(dir, 'w'); // as a ctl embed in another terminal holds it
    try {
      await expect(runEmbed(embedOptions(workdir, { kind: 'products' }))).rejects.toThrow(
        new RegExp(`${dir}: another ctl embed is writing this store: process ${process.pid} .*wait for it, or stop it`),
      );
    } finally {
      await other.release();
    }
    const summary = await runEmbed(embedOptions(workdir, { kind: 'products' }));
    expect(summary.views[0].embedded).toBe(dataset.products.length);
  });

  test('--dtype fp16 and q8 load their files, near fp32; a store keeps its dtype; a missing or damaged file is named', async () => {
    const vectors: Record<string, Map<string, Float32Array>> = {};
    let workdir = '';
    for (const dtype of ['fp32', 'fp16', 'q8'] as const) {
      ({ workdir } = await makeFixture(1));
      const summary = await runEmbed(embedOptions(workdir, { kind: 'products', dtype }));
      expect(summary.views[0].embedded).toBe(2);
      const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('tiny', 'products'));
      expect(store.meta.preprocessing).toMatchObject({ dtype });
      vectors[dtype] = await storeRows(workdir, 'products');
    }
    const fp16 = compareVectors(vectors.fp32, vectors.fp16);
    expect(fp16.maxAbs).toBeGreaterThan(0); // half-precision weights: not the fp32 file
    expect(fp16.maxAbs).toBeLessThan(FP16_TOLERANCE.maxAbs);
    expect(fp16.minCosine).toBeGreaterThan(FP16_TOLERANCE.minCosine);
    // int8 weights and activations perturb a random tiny tower more, but the vectors stay aligned.
    expect(compareVectors(vectors.fp32, vectors.q8).minCosine).toBeGreaterThan(0.7);

    // The last workdir holds q8 vectors: another dtype would mix two models' vectors in one store.
    await expect(runEmbed(embedOptions(workdir, { kind: 'products', dtype: 'fp32' }))).rejects.toThrow(
      /preprocessing\.dtype/,
    );
    const copy = join(workdir, 'no-fp16');
    await cp(join(workdirPaths(workdir).modelsDir, 'tiny'), copy, { recursive: true });
    await rm(join(copy, 'onnx', 'vision_model_fp16.onnx'));
    await expect(runEmbed(embedOptions(workdir, { model: copy, kind: 'products', dtype: 'fp16' }))).rejects.toThrow(
      /onnx\/vision_model_fp16\.onnx: missing/,
    );
    // A damaged JSON file of the folder is named with its line, before transformers.js reads it.
    await writeFile(join(copy, 'preprocessor_config.json'), '{\n  "size": ');
    await expect(runEmbed(embedOptions(workdir, { model: copy, kind: 'products', dtype: 'q8' }))).rejects.toThrow(
      `${join(copy, 'preprocessor_config.json')}:2:11: not valid JSON`,
    );
  });

  test('an fp16 file with float16 inputs and outputs (optimum --dtype fp16) gives the float32-IO file its vectors', async () => {
    const { workdir } = await makeFixture(1);
    await runEmbed(embedOptions(workdir, { kind: 'products', dtype: 'fp16' }));
    const dir = join(workdir, 'half-io');
    await cp(join(workdirPaths(workdir).modelsDir, 'tiny'), dir, { recursive: true });
    const halfIo = buildVisionTower(GENERATED_PRESETS.tiny, { format: 'fp16', halfIo: true });
    await writeImage(join(dir, 'onnx', 'vision_model_fp16.onnx'), halfIo);
    await runEmbed(embedOptions(workdir, { model: dir, kind: 'products', dtype: 'fp16' }));
    // The same half-precision arithmetic; only where the pixels are rounded to float16 differs.
    const { maxAbs } = compareVectors(
      await storeRows(workdir, 'products'),
      await storeRows(workdir, 'products', 'half-io'),
    );
    expect(maxAbs).toBeLessThan(1e-3);
  });

  test('a CLIP-style model (CLIPImageProcessor: resize + centre crop; image_embeds output) works through the same path', async () => {
    const { workdir } = await makeFixture(1);
    const dir = join(workdir, 'clip-like');
    const spec = GENERATED_PRESETS.tiny;
    await writeImage(join(dir, 'onnx', 'vision_model.onnx'), buildVisionTower(spec, { pooledName: 'image_embeds' }));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ model_type: 'clip', projection_dim: spec.projectionSize }),
    );
    await writeFile(
      join(dir, 'preprocessor_config.json'),
      JSON.stringify({
        image_processor_type: 'CLIPImageProcessor',
        do_resize: true,
        size: { shortest_edge: spec.imageSize },
        resample: 3,
        do_center_crop: true,
        crop_size: { height: spec.imageSize, width: spec.imageSize },
        do_rescale: true,
        rescale_factor: 1 / 255,
        do_normalize: true,
        image_mean: [0.48145466, 0.4578275, 0.40821073],
        image_std: [0.26862954, 0.26130258, 0.27577711],
      }),
    );
    const summary = await runEmbed(embedOptions(workdir, { model: dir }));
    expect(summary.embedded).toBe(3);
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('clip-like', 'scenes-full'));
    expect(store.meta.preprocessing).toMatchObject({
      processor: 'CLIPImageProcessor',
      output: 'image_embeds',
      do_center_crop: true,
    });
    for (const v of (await storeRows(workdir, 'products', 'clip-like')).values()) expect(dot(v, v)).toBeCloseTo(1, 5);
  });

  test('offline, a hub id loads from the download cache at its pinned revision, or names the missing file', async () => {
    const { workdir } = await makeFixture(1);
    await expect(runEmbed(embedOptions(workdir, { model: 'Marqo/marqo-fashionSigLIP' }))).rejects.toThrow(
      /offline: config\.json of Marqo\/marqo-fashionSigLIP@c56244cc94f92419e8369fa71efdaf403b124ce8 is not on disk/,
    );
    // Where a download at that revision lands: workdir/models/hub/<id>/<revision>/ (a stand-in model here).
    const modelsDir = workdirPaths(workdir).modelsDir;
    await runEmbed(embedOptions(workdir, { kind: 'products' })); // writes models/tiny
    const cached = join(modelsDir, 'hub', 'Marqo', 'marqo-fashionSigLIP', 'c56244cc94f92419e8369fa71efdaf403b124ce8');
    await cp(join(modelsDir, 'tiny'), cached, { recursive: true });
    const summary = await runEmbed(embedOptions(workdir, { model: 'Marqo/marqo-fashionSigLIP', kind: 'products' }));
    expect(summary).toMatchObject({
      model: 'Marqo/marqo-fashionSigLIP',
      revision: 'c56244cc94f92419e8369fa71efdaf403b124ce8',
      embedded: 2,
    });
    await rm(join(cached, 'onnx', 'vision_model_quantized.onnx'));
    await expect(
      runEmbed(embedOptions(workdir, { model: 'Marqo/marqo-fashionSigLIP', kind: 'scenes', dtype: 'q8' })),
    ).rejects.toThrow(
      /offline: onnx\/vision_model_quantized\.onnx of Marqo\/marqo-fashionSigLIP@c56244cc.* is not on disk/,
    );
  });

  test("ctl serve's uploads open the hub model at the revision the store was embedded with", async () => {
    const { workdir } = await makeFixture(1);
    const modelsDir = workdirPaths(workdir).modelsDir;
    await runEmbed(embedOptions(workdir, { kind: 'products' })); // writes models/tiny
    const revision = 'b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9';
    await cp(join(modelsDir, 'tiny'), join(modelsDir, 'hub', 'someone', 'siglip', revision), { recursive: true });
    await runEmbed(embedOptions(workdir, { model: 'someone/siglip', revision, kind: 'products' }));
    const upload = await openUploadEmbedder(workdir, 'someone/siglip', 'cpu');
    expect(upload).toMatchObject({ enabled: true, embedder: { model: 'someone/siglip' } });
    if (upload.enabled) await upload.embedder.dispose();
  });
});
