// Small hand-rolled datasets and vectors for the eval tests, plus the brute-force reference every protocol is
// checked against. Integer-valued vectors make every dot product exact, so ties are real ties on every engine.
// For the CLI tests (eval, reproduce): a planted-structure workdir with tiny v1/v2-shaped configs.
import type { Dataset } from '../src/data/dataset.js';
import type { Pair, Scene } from '../src/data/types.js';
import type { ProtocolInput } from '../src/eval/protocols.js';
import { Random } from '../src/util/random.js';
import { plantedWorkdir, smallConfig, writeConfig } from './train-fixtures.js';

/** Uniform draws from the project's seeded generator, so failures reproduce. */
export function rng(seed: number): () => number {
  const random = new Random(seed);
  return () => random.uniform();
}

const sig = (prefix: string, i: number) => (prefix + i.toString(16)).padStart(32, '0');

/** A dataset of `scenes` scenes with 1..maxItems distinct products each, drawn from `products` products. */
export function tinyDataset(options: {
  seed: number;
  scenes: number;
  products: number;
  categories: number;
  maxItems: number;
  duplicatePair?: boolean;
}): Dataset {
  const rand = rng(options.seed);
  const categories = Array.from({ length: options.categories }, (_, i) => ({
    index: i,
    name: `Cat${i}`,
    path: `Root|Cat${i}`,
  }));
  const products = Array.from({ length: options.products }, (_, i) => ({
    sig: sig('p', i),
    category: i % options.categories,
  }));
  const scenes: Scene[] = [];
  const pairs: Pair[] = [];
  for (let s = 0; s < options.scenes; s++) {
    const count = 1 + Math.floor(rand() * options.maxItems);
    const chosen = new Set<number>();
    while (chosen.size < Math.min(count, options.products)) chosen.add(Math.floor(rand() * options.products));
    const items = [...chosen].map((j) => ({
      product: products[j].sig,
      bbox: [0, 0, 1, 1] as [number, number, number, number],
    }));
    scenes.push({ sig: sig('s', s), items });
    for (const it of items) pairs.push({ scene: sig('s', s), product: it.product, bbox: it.bbox });
  }
  if (options.duplicatePair) pairs.push({ ...pairs[0] });
  return {
    version: 1,
    domain: 'fashion',
    source: 'synthetic',
    categories,
    products,
    scenes,
    pairs,
    splits: { scene: { scheme: 'scene', seed: 0, parts: {} }, seed: { scheme: 'seed', seed: 42, parts: {} } },
    skipped: {},
  };
}

/** Vectors with small integer entries (exact dot products, frequent ties). `perPair`: one scene vector per pair. */
export function intVectors(dataset: Dataset, dim: number, seed: number, values = 3, perPair = false): ProtocolInput {
  const rand = rng(seed);
  const draw = () => Math.floor(rand() * values) - Math.floor(values / 2);
  const productVectors = Float32Array.from({ length: dataset.products.length * dim }, draw);
  const sceneVec = new Map<string, Float32Array>();
  for (const s of dataset.scenes) sceneVec.set(s.sig, Float32Array.from({ length: dim }, draw));
  const pairs = dataset.pairs.map((_, i) => i);
  const sceneVectors = new Float32Array(pairs.length * dim);
  pairs.forEach((p, i) => {
    const v = perPair ? Float32Array.from({ length: dim }, draw) : sceneVec.get(dataset.pairs[p].scene)!;
    sceneVectors.set(v, i * dim);
  });
  return { dataset, pairs, sceneVectors, productVectors, dim };
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += a[ao + d] * b[bo + d];
  return s;
}

/** Brute force, straight from the definitions: per query, its rank and (category protocol) its negatives. */
export function bruteForce(
  protocol: 'seed' | 'catalog' | 'category',
  input: ProtocolInput,
): { ranks: number[]; negatives: number[] } {
  const { dataset, pairs, sceneVectors, productVectors, dim } = input;
  const index = new Map(dataset.products.map((p, j) => [p.sig, j]));
  const positives = new Map<string, Set<number>>();
  for (const s of dataset.scenes) positives.set(s.sig, new Set(s.items.map((it) => index.get(it.product)!)));
  const ranks: number[] = [];
  const negatives: number[] = [];
  pairs.forEach((p, i) => {
    const pair = dataset.pairs[p];
    const t = index.get(pair.product)!;
    if (protocol === 'seed') {
      const own = dot(sceneVectors, i * dim, productVectors, t * dim, dim);
      let rank = 1;
      pairs.forEach((q, j) => {
        const other = index.get(dataset.pairs[q].product)!;
        if (j !== i && dot(sceneVectors, i * dim, productVectors, other * dim, dim) >= own) rank++;
      });
      ranks.push(rank);
      negatives.push(pairs.length - 1);
      return;
    }
    const own = dot(sceneVectors, i * dim, productVectors, t * dim, dim);
    let rank = 1;
    let neg = 0;
    dataset.products.forEach((prod, j) => {
      if (j === t || positives.get(pair.scene)!.has(j)) return;
      if (protocol === 'category' && prod.category !== dataset.products[t].category) return;
      neg++;
      if (dot(sceneVectors, i * dim, productVectors, j * dim, dim) >= own) rank++;
    });
    ranks.push(rank);
    negatives.push(neg);
  });
  return { ranks, negatives };
}

/**
 * A small planted-structure workdir (train-fixtures) and, written into it, tiny configs shaped like the reference's
 * v1 and v2 that, like the real ones, train on the seed split and select on the seed protocol.
 */
export async function plantedWorkdirWithConfigs(): Promise<{ workdir: string; v1: string; v2: string }> {
  const { workdir } = await plantedWorkdir({ scenes: 300, dim: 16, categories: 3, latent: 4, seed: 3 });
  const selection = { protocol: 'seed', metric: 'recall@10' };
  const v2 = await writeConfig(
    workdir,
    'v2',
    smallConfig({ name: 'v2', split: 'seed', epochs: 2, selection } as Record<string, unknown>),
  );
  const v1 = await writeConfig(
    workdir,
    'v1',
    smallConfig({
      name: 'v1',
      split: 'seed',
      epochs: 2,
      model: { arch: 'v1', hidden: 24, out: 8, dropout: 0.2 },
      loss: { infonce: 1, triplet: 0 },
      negatives: { strategy: 'none' },
      optimizer: { kind: 'adam', lr: 1e-3 },
      selection,
    } as Record<string, unknown>),
  );
  return { workdir, v1, v2 };
}
