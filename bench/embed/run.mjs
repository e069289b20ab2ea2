// Embed benchmark: images/s of `ctl embed`'s real path (sharp decode + transformers.js SigLIP processor +
// onnxruntime-node) with the generated ViT-B/16-sized model at 224 px on 2 threads, beside the same-sized tower in
// PyTorch (bench/embed/torch_vit.py, random weights) on the same images, decode included on both sides. Rounds
// alternate the two so a busy machine slows both alike; medians are reported.
//
//   npm run build && node bench/embed/run.mjs [--images 48] [--batch 8] [--threads 2] [--rounds 2] [--sweep]
//
// --sweep also times the model alone (no decode) under onnxruntime session options: graph optimisation level,
// intra-op threads, fp32 vs q8. Writes bench/out/embed/result.json.
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { EmbeddingStore } from '../../dist/data/store/embeddings.js';
import { saveDataset } from '../../dist/data/stl/dataset-io.js';
import { ensureGeneratedModel } from '../../dist/embed/generated-models.js';
import { runEmbed } from '../../dist/embed/run.js';
import { workdirPaths } from '../../dist/data/workdir.js';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '48' },
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    sweep: { type: 'boolean', default: false },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const N = Number(args.images);
const BATCH = Number(args.batch);
const THREADS = Number(args.threads);
const ROUNDS = Number(args.rounds);
const OUT = join(import.meta.dirname, '..', 'out', 'embed');
const workdir = join(OUT, 'workdir');
const paths = workdirPaths(workdir);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Pinterest-sized (400 px wide) JPEGs with smooth regions, edges and some texture, like product photos. */
async function writeImages() {
  const sigs = Array.from({ length: N }, (_, i) => `c${i.toString(16).padStart(31, '0')}`);
  const width = 400;
  const height = 533;
  for (const [i, sig] of sigs.entries()) {
    const data = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 3;
        const inside = Math.hypot(x - 200 - i * 3, y - 260) < 120 + i;
        const noise = ((x * 7919 + y * 104729 + i * 31) % 17) - 8;
        data[o] = inside ? 180 + noise : (x + i * 5) % 256;
        data[o + 1] = inside ? 60 + noise : (y + i * 11) % 256;
        data[o + 2] = inside ? 90 : (x + y + noise) % 256;
      }
    await mkdir(paths.images('products'), { recursive: true });
    await sharp(data, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(paths.imageFile('products', sig));
  }
  await saveDataset(workdir, {
    version: 1,
    domain: 'fashion',
    source: 'synthetic',
    categories: [{ index: 0, name: 'Shoes', path: 'Apparel & Accessories|Shoes' }],
    products: sigs.map((sig) => ({ sig, category: 0 })),
    scenes: [],
    pairs: [],
    splits: { scene: { scheme: 'scene', seed: 0, parts: {} }, seed: { scheme: 'seed', seed: 42, parts: {} } },
    skipped: {},
  });
}

/** `ctl embed` in-process, products only, into a fresh store; images/s excludes model loading. */
async function ortRun(dtype) {
  await rm(join(workdir, 'embeddings'), { recursive: true, force: true });
  const summary = await runEmbed({
    workdir,
    domain: 'fashion',
    model: 'vit-b16',
    offline: true,
    provider: 'local',
    device: 'cpu',
    dtype,
    threads: THREADS,
    batch: BATCH,
    prefetch: 2,
    commitEvery: 8,
    kind: 'products',
    sceneView: 'full',
    hide: 'crop',
    progress: false,
  });
  const store = await EmbeddingStore.open(paths.embeddings('vit-b16', 'products'));
  return { rate: summary.imagesPerSecond, vectors: (await store.readAll()).data };
}

function torchRun() {
  const r = spawnSync(
    args.python,
    [
      join(import.meta.dirname, 'torch_vit.py'),
      paths.images('products'),
      '--batch',
      String(BATCH),
      '--threads',
      String(THREADS),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`torch_vit.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** The model alone under session options, on one fixed batch (no decode). */
async function sweep(modelDir) {
  const x = Float32Array.from({ length: BATCH * 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.001) * 0.9);
  const rows = [];
  for (const [file, dtype] of [
    ['vision_model.onnx', 'fp32'],
    ['vision_model_quantized.onnx', 'q8'],
  ])
    for (const graphOptimizationLevel of ['basic', 'all'])
      for (const intraOpNumThreads of [1, THREADS]) {
        const session = await ort.InferenceSession.create(join(modelDir, 'onnx', file), {
          graphOptimizationLevel,
          intraOpNumThreads,
          interOpNumThreads: 1,
        });
        const feeds = { pixel_values: new ort.Tensor('float32', x, [BATCH, 3, 224, 224]) };
        await session.run(feeds);
        const t = performance.now();
        await session.run(feeds);
        await session.run(feeds);
        const rate = (2 * BATCH) / ((performance.now() - t) / 1000);
        await session.release();
        rows.push({ dtype, graphOptimizationLevel, intraOpNumThreads, imagesPerSecond: rate });
        console.log(
          `  model only  ${dtype}  opt=${graphOptimizationLevel.padEnd(5)}  threads=${intraOpNumThreads}  ${rate.toFixed(2)} images/s`,
        );
      }
  return rows;
}

const cosine = (a, b, dim) => {
  let sum = 0;
  for (let r = 0; r < a.length / dim; r++) {
    let d = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) d += a[i] * b[i];
    sum += d;
  }
  return sum / (a.length / dim);
};

await writeImages();
const t0 = performance.now();
const modelDir = await ensureGeneratedModel(paths.modelsDir, 'vit-b16');
console.log(`vit-b16 model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${modelDir}`);
console.log(
  `${N} JPEG images 400x533, batch ${BATCH}, ${THREADS} threads, ${ROUNDS} rounds (load ${(await import('node:os')).loadavg()[0].toFixed(1)})`,
);

const results = { torch: [], fp32: [], q8: [] };
let fp32Vectors;
let q8Vectors;
for (let round = 0; round < ROUNDS; round++) {
  const torch = torchRun();
  results.torch.push(torch.images_per_s);
  const fp32 = await ortRun('fp32');
  results.fp32.push(fp32.rate);
  fp32Vectors = fp32.vectors;
  const q8 = await ortRun('q8');
  results.q8.push(q8.rate);
  q8Vectors = q8.vectors;
  console.log(
    `round ${round + 1}: torch ${torch.images_per_s.toFixed(2)}  ctl fp32 ${fp32.rate.toFixed(2)}  ctl q8 ${q8.rate.toFixed(2)} images/s`,
  );
}
const summary = {
  images: N,
  batch: BATCH,
  threads: THREADS,
  torchImagesPerSecond: median(results.torch),
  ctlFp32ImagesPerSecond: median(results.fp32),
  ctlQ8ImagesPerSecond: median(results.q8),
  ratioFp32: median(results.fp32) / median(results.torch),
  ratioQ8: median(results.q8) / median(results.torch),
  q8VsFp32MeanCosine: cosine(fp32Vectors, q8Vectors, 768),
  rounds: results,
};
console.log(
  `\nPyTorch ${summary.torchImagesPerSecond.toFixed(2)} images/s | ctl embed fp32 ${summary.ctlFp32ImagesPerSecond.toFixed(2)} images/s ` +
    `(ratio ${summary.ratioFp32.toFixed(2)}) | ctl embed q8 ${summary.ctlQ8ImagesPerSecond.toFixed(2)} images/s (ratio ${summary.ratioQ8.toFixed(2)}; ` +
    `mean cosine to fp32 ${summary.q8VsFp32MeanCosine.toFixed(3)})`,
);
if (args.sweep) summary.sweep = await sweep(modelDir);
await writeFile(join(OUT, 'result.json'), JSON.stringify(summary, null, 2) + '\n');
