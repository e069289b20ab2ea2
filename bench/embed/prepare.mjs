// How fast one process prepares images for the model: `ctl embed`'s prepare step (sharp decode of a 400×533 JPEG,
// resizing to 224 px and normalising as the SigLIP processor does) on N images, 16 in flight as in a run. Reports
// CPU time per image (process.cpuUsage: all threads), the main thread's busy time per image (event-loop
// utilisation) and images/s (wall), for:
//   decode only                the decode, on the main thread
//   decode + processor         decode and transformers.js's processor on the main thread (the path for processor
//                              configs src/embed/pixels.ts does not reproduce)
//   prepare (workers)          the encoder's prepare: decode and pixels.ts on worker threads (one per core, as in
//                              ctl embed)
// Busy main-thread time per image bounds the images/s one thread can feed a GPU.
//
//   npm run build && node bench/embed/prepare.mjs [--images 200]
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { AutoImageProcessor, RawImage } from '@huggingface/transformers';
import { ensureGeneratedModel } from '../../dist/embed/generated-models.js';
import { loadJobImage } from '../../dist/embed/images.js';
import { loadLocalEncoder } from '../../dist/embed/local-encoder.js';
import { benchArgs } from '../common.mjs';

const args = benchArgs({ images: { type: 'string', default: '200' } }, { counts: { images: 1 } });
const N = args.images;
const IN_FLIGHT = 16;
const OUT = join(import.meta.dirname, '..', 'out', 'embed-prepare');

/** Pinterest-sized JPEGs with smooth regions, edges and some texture (as bench/embed/run.mjs). */
async function writeImages() {
  await mkdir(join(OUT, 'images'), { recursive: true });
  const [width, height] = [400, 533];
  const jobs = [];
  for (let i = 0; i < N; i++) {
    const data = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 3;
        const inside = Math.hypot(x - 200 - (i % 40), y - 260) < 120 + (i % 50);
        const noise = ((x * 7919 + y * 104729 + i * 31) % 17) - 8;
        data[o] = inside ? 180 + noise : (x + i * 5) % 256;
        data[o + 1] = inside ? 60 + noise : (y + i * 11) % 256;
        data[o + 2] = inside ? 90 : (x + y + noise) % 256;
      }
    const file = join(OUT, 'images', `${i}.jpg`);
    await sharp(data, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(file);
    jobs.push({ id: String(i), sig: String(i), file });
  }
  return jobs;
}

/** The generated tiny model with its processor set to ViT-B/16's 224 px input (the model itself is not run). */
async function processorAt224() {
  const dir = join(OUT, 'model');
  await cp(await ensureGeneratedModel(join(OUT, 'models'), 'tiny'), dir, { recursive: true });
  const config = JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8'));
  await writeFile(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({ ...config, size: { height: 224, width: 224 } }),
  );
  return dir;
}

async function measure(label, jobs, step) {
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < jobs.length; i += IN_FLIGHT) await Promise.all(jobs.slice(i, i + IN_FLIGHT).map(step));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const perImage = (ms) => (ms / jobs.length).toFixed(2);
  console.log(
    `${label}: CPU ${perImage((cpu.user + cpu.system) / 1000)} ms/image, main thread busy ${perImage(elu.active)} ` +
      `ms/image, ${Math.round((jobs.length / wall) * 1000)} images/s`,
  );
}

const jobs = await writeImages();
const location = await processorAt224();
const encoder = await loadLocalEncoder(
  { kind: 'local', id: 'prepare-bench', location },
  { device: 'cpu', dtype: 'fp32', threads: 1, offline: true, modelsDir: join(OUT, 'models') },
);
await Promise.all(jobs.slice(0, IN_FLIGHT).map((j) => encoder.prepare(j))); // warm-up
await measure('decode only', jobs, (j) => loadJobImage(j));
const processor = await AutoImageProcessor.from_pretrained(location, { local_files_only: true });
await measure('decode + processor', jobs, async (j) => {
  const { image } = await loadJobImage(j);
  return processor(new RawImage(image.data, image.width, image.height, 3));
});
await measure('prepare (workers)', jobs, (j) => encoder.prepare(j));
await encoder.dispose();
