// A small STL-shaped workdir with planted structure for the training tests, written through the real paths:
// raw STL files → normaliseWorkdir (dataset + splits) → the embedding store. Scenes and their products share a
// latent "look" z; a product's embedding is A·z_p + its category's offset + noise and a scene's is B·z + noise
// with A, B independent random maps, so raw cosine (zero-shot) is near chance while a learned map finds the look.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normaliseWorkdir } from '../src/data/stl/dataset-io.js';
import { EmbeddingStore, sceneProductKey } from '../src/data/store/embeddings.js';
import type { Dataset } from '../src/data/dataset.js';
import type { EngineMatrices } from '../src/train/engine.js';
import { workdirPaths } from '../src/data/workdir.js';
import { keyedRandom } from '../src/util/random.js';
import type { Random } from '../src/util/random.js';
import type * as z from 'zod';
import type { trainConfigSchema } from '../src/train/config.js';

/** A config file's data: what the schema reads, before its defaults. */
export type ConfigFile = z.input<typeof trainConfigSchema>;

export const TEST_MODEL = 'test-planted';

export interface PlantedOptions {
  scenes: number;
  dim: number;
  categories: number;
  latent: number;
  seed: number;
  /** Products of the catalog that have no embedding (missing downloads). */
  missingProducts?: number;
}

const hex = (rng: Random) => Array.from({ length: 32 }, () => '0123456789abcdef'[rng.int(16)]).join('');

export async function plantedWorkdir(options: PlantedOptions): Promise<{ workdir: string; dataset: Dataset }> {
  const workdir = await mkdtemp(join(tmpdir(), 'ctl-train-'));
  const rng = keyedRandom(options.seed, 'planted');
  const { dim, latent } = options;
  const gaussian = (n: number, scale = 1) => Float32Array.from({ length: n }, () => rng.normal() * scale);
  const A = gaussian(dim * latent);
  const B = gaussian(dim * latent);
  const offsets = gaussian(options.categories * dim, 0.5);
  const mapped = (M: Float32Array, z: Float32Array, noise: number) => {
    const out = gaussian(dim, noise);
    for (let d = 0; d < dim; d++) for (let k = 0; k < latent; k++) out[d] += M[d * latent + k] * z[k];
    return out;
  };

  const pairs: string[] = [];
  const categoriesOf: Record<string, string> = {};
  const productVectors = new Map<string, Float32Array>();
  const sceneVectors = new Map<string, Float32Array>();
  const hidden = new Map<string, Float32Array>();
  for (let s = 0; s < options.scenes; s++) {
    const scene = hex(rng);
    const z = gaussian(latent);
    sceneVectors.set(scene, mapped(B, z, 0.3));
    const items = 1 + rng.int(3);
    for (let i = 0; i < items; i++) {
      const product = hex(rng);
      const category = rng.int(options.categories);
      const zp = Float32Array.from(z, (v) => v + rng.normal() * 0.3);
      const x = mapped(A, zp, 0.3);
      for (let d = 0; d < dim; d++) x[d] += offsets[category * dim + d];
      productVectors.set(product, x);
      categoriesOf[product] = `Apparel & Accessories|Clothing|Cat${category}`;
      hidden.set(sceneProductKey(scene, product), mapped(B, z, 0.35));
      const l = rng.uniform() * 0.5;
      const t = rng.uniform() * 0.5;
      pairs.push(JSON.stringify({ product, scene, bbox: [l, t, l + 0.3, t + 0.4] }));
    }
  }
  const paths = workdirPaths(workdir);
  await mkdir(join(workdir, 'stl'), { recursive: true });
  await writeFile(paths.rawPairs('fashion'), pairs.join('\n') + '\n');
  await writeFile(paths.rawCategories('fashion'), JSON.stringify(categoriesOf));
  const { dataset } = await normaliseWorkdir(workdir, 'fashion', { source: 'synthetic' });

  const write = async (
    view: 'products' | 'scenes-full' | 'scenes-hide-product',
    vectors: Map<string, Float32Array>,
  ) => {
    const store = await EmbeddingStore.openOrCreate(paths.embeddings(TEST_MODEL, view), {
      model: TEST_MODEL,
      dim,
      view,
    });
    const ids = [...vectors.keys()];
    const rows = new Float32Array(ids.length * dim);
    ids.forEach((id, i) => rows.set(vectors.get(id)!, i * dim));
    await store.append(ids, rows);
  };
  const missing = new Set(dataset.products.slice(0, options.missingProducts ?? 0).map((p) => p.sig));
  await write('products', new Map([...productVectors].filter(([sig]) => !missing.has(sig))));
  await write('scenes-full', sceneVectors);
  await write('scenes-hide-product', hidden);
  return { workdir, dataset };
}

/** A small, fast config in the shape of configs/v2.json. */
export function smallConfig(overrides: Partial<ConfigFile> = {}): ConfigFile {
  return {
    name: 'test',
    domain: 'fashion',
    embeddings: { model: TEST_MODEL },
    sceneView: 'full',
    split: 'scene',
    model: {
      arch: 'v2',
      hidden: 32,
      out: 16,
      blocks: 1,
      dropout: 0.1,
      categoryDim: 4,
      normalize: true,
      temperature: { init: 0.07, learnable: true, parametrisation: 'log', min: 0.01, max: 1 },
    },
    loss: { infonce: 1, triplet: 0.5, margin: 0.2 },
    negatives: { strategy: 'same-category-random' },
    optimizer: { kind: 'adamw', lr: 3e-3, weightDecay: 0.01, betas: [0.9, 0.999], eps: 1e-8, gradClip: 1 },
    schedule: { warmupFraction: 0.1, decay: 'cosine', unit: 'step' },
    batchSize: 64,
    epochs: 3,
    patience: 0,
    selection: { protocol: 'catalog', metric: 'recall@10' },
    seed: 7,
    ...overrides,
  };
}

export async function writeConfig(dir: string, name: string, config: ConfigFile): Promise<string> {
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify(config, null, 2));
  return path;
}

/** A run's epoch records from its metrics.jsonl. */
export async function epochRecords(workdir: string, run: string): Promise<Record<string, any>[]> {
  const text = await readFile(join(workdir, 'runs', run, 'metrics.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === 'epoch');
}

/** The epoch of a run's last checkpoint, 0 before the first. */
export async function checkpointEpoch(workdir: string, run: string): Promise<number> {
  try {
    return JSON.parse(await readFile(join(workdir, 'runs', run, 'checkpoints', 'last', 'state.json'), 'utf8')).epoch;
  } catch {
    return 0;
  }
}

/**
 * An engine's matrices of Gaussian rows: `trainRows` training rows sharing `scenes` scene rows (as a scene's pairs do:
 * the step gathers each row's scene through trainSceneRow), `valRows` validation scenes, `products` products in
 * `numCategories` categories.
 */
export function randomMatrices(
  rng: Random,
  sizes: {
    inputDim: number;
    numCategories: number;
    trainRows: number;
    scenes: number;
    valRows: number;
    products: number;
  },
): EngineMatrices {
  const { inputDim, numCategories, trainRows, scenes, valRows, products } = sizes;
  const gaussian = (rows: number) => Float32Array.from({ length: rows * inputDim }, () => rng.normal());
  return {
    trainScenes: gaussian(scenes),
    trainSceneRow: Int32Array.from({ length: trainRows }, () => rng.int(scenes)),
    valScenes: gaussian(valRows),
    products: gaussian(products),
    productCategory: Int32Array.from({ length: products }, () => rng.int(numCategories)),
    rowProduct: Int32Array.from({ length: trainRows }, () => rng.int(products)),
  };
}
