// Embed benchmark: images/s of `ctl embed`'s real path (decode and SigLIP preprocessing on worker threads +
// onnxruntime-node) with the generated ViT-B/16-sized model at 224 px on 2 threads, beside the same-sized tower in
// PyTorch (bench/embed/torch_vit.py, random weights) on the same images, decode included on both sides. Rounds
// alternate the two so a busy machine slows both alike; medians are reported.
//
//   npm run build && node bench/embed/run.mjs [--images 48] [--batch 8] [--threads 2] [--rounds 2] [--sweep]
//       [--device cpu|webgpu|cuda|auto] [--dtypes fp32,q8] [--torch-device cpu|cuda] [--skip-torch]
//       [--model vit-b16|small|tiny]
//
// --device is `ctl embed --device` (bench/gpu runs it with webgpu on a GPU machine); --torch-device moves the
// PyTorch tower (its decode stays on the CPU, one thread, as torch_vit.py does it). --model picks a smaller
// generated model for smoke tests, with --skip-torch only (the PyTorch tower is ViT-B/16). The PyTorch line names
// the BLAS its matrix products ran on. --sweep also times the model alone (no decode, at the model's image size)
// under onnxruntime session options: graph optimisation level, intra-op threads, fp32 vs q8. Writes bench/out/embed/result.json. The PyTorch side imports torch, numpy and PIL
// (Debian: python3-torch python3-numpy python3-pil); without them the script says which is missing and stops.
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { EmbeddingStore } from '../../dist/data/store/embeddings.js';
import { saveDataset } from '../../dist/data/stl/dataset-io.js';
import { DEVICES } from '../../dist/embed/device.js';
import { DTYPES as ALL_DTYPES } from '../../dist/embed/dtype.js';
import { ensureGeneratedModel, GENERATED_PRESETS } from '../../dist/embed/generated-models.js';
import { runEmbed } from '../../dist/embed/run.js';
import { workdirPaths } from '../../dist/data/workdir.js';
import { benchArgs, blasEnv, loadAverage, median, pythonMissing, say, torchBlasName } from '../common.mjs';

const args = benchArgs(
  {
    images: { type: 'string', default: '48' },
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    sweep: { type: 'boolean', default: false },
    device: { type: 'string', default: 'cpu' },
    model: { type: 'string', default: 'vit-b16' },
    dtypes: { type: 'string', default: 'fp32,q8' },
    'torch-device': { type: 'string', default: 'cpu' },
    'skip-torch': { type: 'boolean', default: false },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
  {
    counts: { images: 1, batch: 1, threads: 1, rounds: 1 },
    choices: { device: DEVICES, 'torch-device': ['cpu', 'cuda'], model: Object.keys(GENERATED_PRESETS) },
    lists: { dtypes: ALL_DTYPES },
  },
);
// The PyTorch tower is ViT-B/16: beside another model a ratio would compare different work.
if (args.model !== 'vit-b16' && !args['skip-torch']) {
  say(`run.mjs: --model ${args.model}: the PyTorch baseline is ViT-B/16; pass --skip-torch to time ctl alone`);
  process.exit(2);
}
const IMAGE_SIZE = GENERATED_PRESETS[args.model].imageSize;
const N = args.images;
const BATCH = args.batch;
const THREADS = args.threads;
const ROUNDS = args.rounds;
const DTYPES = args.dtypes.split(',');
const OUT = join(import.meta.dirname, '..', 'out', 'embed');
const workdir = join(OUT, 'workdir');
const paths = workdirPaths(workdir);

/** Pinterest-sized (400 px wide) JPEGs with smooth regions, edges and some texture, like product photos. */
async function writeImages() {
  const sigs = Array.from({ length: N }, (_, i) => `c${i.toString(16).padStart(31, '0')}`);
  const scene = 'f'.repeat(32);
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
    // A dataset has at least one pair; this scene is never embedded (products only).
    scenes: [{ sig: scene, items: [{ product: sigs[0], bbox: [0, 0, 1, 1] }] }],
    pairs: [{ scene, product: sigs[0], bbox: [0, 0, 1, 1] }],
    splits: {
      scene: { scheme: 'scene', seed: 0, parts: { train: [0], val: [], test: [] } },
      seed: { scheme: 'seed', seed: 42, parts: { train: [0], val: [] } },
    },
    skipped: {},
  });
}

/** `ctl embed` in-process, products only, into a fresh store; images/s excludes model loading. */
async function ortRun(dtype) {
  await rm(join(workdir, 'embeddings'), { recursive: true, force: true });
  const summary = await runEmbed({
    workdir,
    domain: 'fashion',
    model: args.model,
    offline: true,
    provider: 'local',
    device: args.device,
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
  const store = await EmbeddingStore.open(paths.embeddings(args.model, 'products'));
  return {
    rate: summary.imagesPerSecond,
    device: summary.device,
    dim: store.dim,
    vectors: (await store.readAll()).data,
  };
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
      '--device',
      args['torch-device'],
    ],
    { env: blasEnv(THREADS), encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`torch_vit.py failed: ${r.stderr}`);
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  result.kernel = (r.stdout + r.stderr).match(/Core: (\S+)/)?.[1] ?? 'unknown';
  return result;
}

/** The model alone under session options, on one fixed batch (no decode). */
async function sweep(modelDir) {
  const x = Float32Array.from({ length: BATCH * 3 * IMAGE_SIZE ** 2 }, (_, i) => Math.sin(i * 0.001) * 0.9);
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
        const feeds = { pixel_values: new ort.Tensor('float32', x, [BATCH, 3, IMAGE_SIZE, IMAGE_SIZE]) };
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

if (!args['skip-torch']) {
  const missing = pythonMissing(args.python, ['numpy', 'torch', 'PIL']);
  if (missing) {
    say(`PyTorch baseline: ${missing}; or pass --skip-torch`);
    process.exit(1);
  }
}
await writeImages();
const t0 = performance.now();
const modelDir = await ensureGeneratedModel(paths.modelsDir, args.model);
console.log(`${args.model} model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${modelDir}`);
console.log(
  `${N} JPEG images 400x533, batch ${BATCH}, ${THREADS} threads, ${ROUNDS} rounds (load average ${loadAverage()})`,
);

let torchBlas;
const results = { torch: [], ctl: Object.fromEntries(DTYPES.map((d) => [d, []])) };
const vectors = {};
let device;
let dim;
for (let round = 0; round < ROUNDS; round++) {
  const line = [];
  if (!args['skip-torch']) {
    const torch = torchRun();
    results.torch.push(torch.images_per_s);
    torchBlas = `PyTorch ${torch.torch}, ${torchBlasName(torch)}, ${torch.threads} threads`;
    line.push(`torch (${args['torch-device']}) ${torch.images_per_s.toFixed(2)}`);
  }
  for (const dtype of DTYPES) {
    const run = await ortRun(dtype);
    results.ctl[dtype].push(run.rate);
    vectors[dtype] = run.vectors;
    device = run.device;
    dim = run.dim;
    line.push(`ctl ${dtype} ${run.rate.toFixed(2)}`);
  }
  console.log(`round ${round + 1}: ${line.join('  ')} images/s`);
}
const torchRate = args['skip-torch'] ? undefined : median(results.torch);
const summary = {
  images: N,
  batch: BATCH,
  threads: THREADS,
  device,
  torchDevice: args['skip-torch'] ? undefined : args['torch-device'],
  torchBlas,
  torchImagesPerSecond: torchRate,
  ctlImagesPerSecond: Object.fromEntries(DTYPES.map((d) => [d, median(results.ctl[d])])),
  ratioToTorch: torchRate && Object.fromEntries(DTYPES.map((d) => [d, median(results.ctl[d]) / torchRate])),
  q8VsFp32MeanCosine: vectors.fp32 && vectors.q8 ? cosine(vectors.fp32, vectors.q8, dim) : undefined,
  rounds: results,
};
const torchText =
  torchRate === undefined ? '' : `${torchBlas} (${args['torch-device']}): ${torchRate.toFixed(2)} images/s | `;
console.log(
  `\n${torchText}ctl embed on ${device}: ` +
    DTYPES.map(
      (d) =>
        `${d} ${summary.ctlImagesPerSecond[d].toFixed(2)} images/s` +
        (torchRate ? ` (ratio ${summary.ratioToTorch[d].toFixed(2)})` : ''),
    ).join(', ') +
    (summary.q8VsFp32MeanCosine === undefined
      ? ''
      : ` | q8 mean cosine to fp32 ${summary.q8VsFp32MeanCosine.toFixed(3)}`),
);
if (args.sweep) summary.sweep = await sweep(modelDir);
await writeFile(join(OUT, 'result.json'), JSON.stringify(summary, null, 2) + '\n');
