#!/usr/bin/env node
// Benchmark of full-catalog ranking at STL scale: 30,000 scene rows × 38,000 products × 256-d, the top-10 of every
// scene and the filtered pessimistic rank of every true pair (~72,000), as `ctl eval --protocol catalog` computes
// them (src/eval/rank.ts). Beside it, the same computation in NumPy and in PyTorch (bench/eval/baseline.py), on
// the same data, in this script; prints each time, the ratios, and whether the ranks agree.
//
//   npm run build && node bench/eval/run.mjs [--scenes 30000] [--products 38000] [--dim 256] [--threads 2]
//       [--engines onnx,js,tfjs] [--sample 1000] [--baselines numpy,torch] [--python /usr/bin/python3] [--block ROWS]
//
// `--engines`: the first is timed on the full problem; the others on the first `--sample` scene rows only (they are
// too slow for the full problem), extrapolated to the full row count.
// NumPy and PyTorch run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (bench/common.mjs says why) and the
// kernel OpenBLAS picked is printed.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, blasEnv, loadAverage, pythonMissing, repo, say, writeRaw } from '../common.mjs';

const here = import.meta.dirname;
const { rankTargets, defaultBlockRows } = await import(join(repo, 'dist/eval/rank.js'));
const { createScoreEngine } = await import(join(repo, 'dist/eval/engines.js'));
const { Random } = await import(join(repo, 'dist/util/random.js'));

const args = benchArgs(
  {
    scenes: { type: 'string', default: '30000' },
    products: { type: 'string', default: '38000' },
    dim: { type: 'string', default: '256' },
    threads: { type: 'string', default: '2' },
    engines: { type: 'string', default: 'onnx,js,tfjs' },
    sample: { type: 'string', default: '1000' },
    baselines: { type: 'string', default: 'numpy,torch' },
    python: { type: 'string', default: '/usr/bin/python3' },
    block: { type: 'string' },
  },
  {
    counts: { scenes: 1, products: 1, dim: 1, threads: 1, sample: 1, block: 1 },
    lists: { engines: ['onnx', 'js', 'tfjs'], baselines: ['numpy', 'torch'] },
    mayBeEmpty: ['baselines'],
  },
);
const numScenes = args.scenes;
const numProducts = args.products;
const dim = args.dim;
const threads = args.threads;
const engines = args.engines.split(',').filter(Boolean);
const sample = Math.min(numScenes, args.sample);
const baselines = args.baselines.split(',').filter(Boolean);
const python = args.python;
const missing =
  baselines.length === 0 ? null : pythonMissing(python, ['numpy', ...(baselines.includes('torch') ? ['torch'] : [])]);
if (missing) {
  say(`baselines: ${missing}; or pass --baselines with fewer (or none: --baselines '')`);
  process.exit(1);
}
const blockRows = args.block;

// ---- data: clustered products; each scene near the mean of its 1-5 products, so true products rank high (as a
// trained model's would) and the scan's early exits behave as on real scores.
function normalise(m, rows) {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += m[r * dim + d] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < dim; d++) m[r * dim + d] *= inv;
  }
  return m;
}
const rand = new Random('bench/eval');
const clusters = 400;
const centres = normalise(
  Float32Array.from({ length: clusters * dim }, () => rand.normal()),
  clusters,
);
const products = new Float32Array(numProducts * dim);
for (let p = 0; p < numProducts; p++) {
  const c = rand.int(clusters);
  for (let d = 0; d < dim; d++) products[p * dim + d] = centres[c * dim + d] + 0.08 * rand.normal();
}
normalise(products, numProducts);
const scenes = new Float32Array(numScenes * dim);
const lists = [];
for (let s = 0; s < numScenes; s++) {
  const u = rand.uniform();
  const count = u < 0.3 ? 1 : u < 0.6 ? 2 : u < 0.8 ? 3 : u < 0.9 ? 4 : 5; // mean 2.4 → ~72,000 pairs
  const own = new Set();
  while (own.size < count) own.add(rand.int(numProducts));
  lists.push([...own]);
  for (const p of own) for (let d = 0; d < dim; d++) scenes[s * dim + d] += products[p * dim + d];
  for (let d = 0; d < dim; d++) scenes[s * dim + d] += 0.1 * rand.normal();
}
normalise(scenes, numScenes);
const offsets = new Int32Array(numScenes + 1);
lists.forEach((l, s) => (offsets[s + 1] = offsets[s] + l.length));
const ids = Int32Array.from(lists.flat());
say(`data: ${numScenes} scenes × ${numProducts} products × ${dim}-d, ${ids.length} true pairs`);

// ---- ours
process.env.UV_THREADPOOL_SIZE ??= String(threads);
async function ours(engine, rows) {
  const task = {
    queries: scenes.subarray(0, rows * dim),
    candidates: products,
    dim,
    targets: { offsets: offsets.subarray(0, rows + 1), ids },
    exclude: { offsets: offsets.subarray(0, rows + 1), ids },
    topK: 10,
  };
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const result = engine === 'tfjs' ? await tfjsRank(task) : await rankTargets(task, { engine, threads, blockRows });
  const cpu = process.cpuUsage(c0);
  return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, result };
}

/** tfjs-backend-wasm as the score engine (measured for the record; not one of ctl's engines: slower). */
async function tfjsRank(task) {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  // A plain (untransposed) matMul is the fast path on wasm: candidates pre-transposed to [dim, n].
  const n = task.candidates.length / dim;
  const t = new Float32Array(task.candidates.length);
  for (let c = 0; c < n; c++) for (let d = 0; d < dim; d++) t[d * n + c] = task.candidates[c * dim + d];
  const candidatesT = tf.tensor2d(t, [dim, n]);
  const engine = {
    name: 'tfjs-wasm',
    score: async (rows, out) => {
      const scores = tf.tidy(() => tf.matMul(tf.tensor2d(rows, [rows.length / dim, dim]), candidatesT));
      out.set(await scores.data());
      scores.dispose();
      return out.subarray(0, (rows.length / dim) * n);
    },
    dispose: async () => candidatesT.dispose(),
  };
  return rankTargets(task, { engine });
}

const results = [];
for (const engine of engines.slice(1)) {
  const r = await ours(engine, sample);
  say(
    `ctl ${engine}: ${sample} rows in ${r.seconds.toFixed(2)} s (cpu ${r.cpuSeconds.toFixed(1)} s) → ${((r.seconds * numScenes) / sample).toFixed(1)} s for ${numScenes} rows, extrapolated`,
  );
  results.push({
    name: `ctl ${engine} (sample ${sample} rows, extrapolated)`,
    seconds: (r.seconds * numScenes) / sample,
  });
}
const full = await ours(engines[0], numScenes);
const peakRssMb = process.resourceUsage().maxRSS / 1024;
say(
  `ctl ${engines[0]}: full ${numScenes} rows in ${full.seconds.toFixed(2)} s (cpu ${full.cpuSeconds.toFixed(1)} s), peak RSS of this process ${peakRssMb.toFixed(0)} MB`,
);

// The matrix product alone (same engine, same blocks, no scan), to show what the scan and its overlap cost.
async function productOnly(engine) {
  const rows = blockRows ?? defaultBlockRows(numProducts);
  const t0 = performance.now();
  const e = await createScoreEngine(engine, products, numProducts, dim, threads);
  const out = [new Float32Array(rows * numProducts), new Float32Array(rows * numProducts)];
  for (let start = 0, b = 0; start < numScenes; start += rows, b++) {
    await e.score(scenes.subarray(start * dim, Math.min(start + rows, numScenes) * dim), out[b % 2]);
  }
  await e.dispose();
  return (performance.now() - t0) / 1000;
}
const productSeconds = engines[0] === 'onnx' ? await productOnly('onnx') : NaN;
if (engines[0] === 'onnx') say(`ctl onnx: the matrix product alone ${productSeconds.toFixed(2)} s`);

// ---- baselines on the same data
const dir = mkdtempSync(join(tmpdir(), 'ctl-bench-eval-'));
writeFileSync(join(dir, 'meta.json'), JSON.stringify({ dim }));
writeRaw(dir, 'scenes.f32', scenes);
writeRaw(dir, 'products.f32', products);
writeRaw(dir, 'targets_offsets.i32', offsets);
writeRaw(dir, 'targets_ids.i32', ids);
const env = blasEnv(threads);
const rows = [];
for (const name of baselines) {
  const out = join(dir, name);
  mkdirSync(out);
  const p = spawnSync(python, [join(here, 'baseline.py'), name, dir, out, '--threads', String(threads)], {
    env,
    encoding: 'utf8',
  });
  if (p.status !== 0) {
    say(`${name}: failed (${p.stderr.trim().split('\n').pop()})`);
    continue;
  }
  const lines = p.stdout.trim().split('\n');
  const info = JSON.parse(lines.pop());
  const kernel = (p.stdout + p.stderr).match(/Core: (\S+)/)?.[1] ?? 'unknown';
  const file = readFileSync(join(out, 'ranks.i32'));
  // A copy of exactly the file's bytes: a small file's Buffer is a view into a larger shared pool.
  const ranks = new Int32Array(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength));
  let differ = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i] !== full.result.ranks[i]) differ++;
  say(
    `${name}: ${info.seconds.toFixed(2)} s (cpu ${info.cpu_seconds.toFixed(1)} s), OpenBLAS kernel ${kernel}, ${JSON.stringify(info)}; ranks differing from ctl: ${differ} of ${ranks.length}`,
  );
  rows.push({ name, seconds: info.seconds, cpuSeconds: info.cpu_seconds, matmul: info.matmul_seconds, kernel, differ });
}
rmSync(dir, { recursive: true, force: true });

console.log(
  `\nfull-catalog ranking, ${numScenes} × ${numProducts} × ${dim}, top-10 + ${ids.length} filtered ranks, ${threads} threads; load average now ${loadAverage()}`,
);
console.log('  wall seconds depend on what else runs; CPU seconds (all threads) much less so');
console.log(
  `  ctl (${engines[0]}, full run)  ${full.seconds.toFixed(2)} s wall, ${full.cpuSeconds.toFixed(1)} s CPU   ` +
    `(matrix product alone ${productSeconds.toFixed(2)} s wall)   peak RSS ${peakRssMb.toFixed(0)} MB (inputs included)`,
);
for (const r of results) console.log(`  ${r.name}  ${r.seconds.toFixed(1)} s wall`);
for (const r of rows)
  console.log(
    `  ${r.name} (OpenBLAS ${r.kernel})  ${r.seconds.toFixed(2)} s wall, ${r.cpuSeconds.toFixed(1)} s CPU   (matrix product alone ${r.matmul.toFixed(2)} s wall)   ` +
      `${r.name}/ctl: wall ${(r.seconds / full.seconds).toFixed(2)}, CPU ${(r.cpuSeconds / full.cpuSeconds).toFixed(2)}   ranks differing from ctl ${r.differ}`,
  );
