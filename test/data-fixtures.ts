// Small STL-format files for the data-layer tests, deterministic from a seed.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pair } from '../src/data/types.js';
import { Random } from '../src/util/random.js';

export const PATHS = [
  'Apparel & Accessories|Shoes',
  'Apparel & Accessories|Clothing|Pants',
  'Apparel & Accessories|Jewelry|Necklaces',
  'Apparel & Accessories|Handbags, Wallets & Cases|Handbags',
];

/** The project's seeded generator, so fixtures are the same on every run. */
function generator(seed: number): () => number {
  const random = new Random(seed);
  return () => random.uniform();
}

export function makeRaw(scenes: number, products: number, seed = 1) {
  const rand = generator(seed);
  const sig = () => Array.from({ length: 32 }, () => '0123456789abcdef'[Math.floor(rand() * 16)]).join('');
  const productSigs = Array.from({ length: products }, sig);
  const categories: Record<string, string> = {};
  productSigs.forEach((p, i) => (categories[p] = PATHS[i % PATHS.length]!));
  const pairs: Pair[] = [];
  for (let s = 0; s < scenes; s++) {
    const scene = sig();
    const count = 1 + Math.floor(rand() * 4);
    const used = new Set<string>();
    for (let k = 0; k < count; k++) {
      const product = productSigs[Math.floor(rand() * products)]!;
      if (used.has(product)) continue;
      used.add(product);
      const left = Math.round(rand() * 0.5 * 1e4) / 1e4;
      const top = Math.round(rand() * 0.5 * 1e4) / 1e4;
      pairs.push({ product, scene, bbox: [left, top, left + 0.3, top + 0.4] } as Pair);
    }
  }
  return { pairs, categories };
}

/** The released layouts: pairs as JSON lines (key order product, scene, bbox), categories as one object. */
export function pairsText(pairs: Pair[]): string {
  return pairs.map(({ product, scene, bbox }) => JSON.stringify({ product, scene, bbox })).join('\n') + '\n';
}

const tempDirs: string[] = [];

/** A fresh temp folder, removed by `removeTempDirs` (call it from the test file's afterAll). */
export async function tempDir(prefix = 'ctl-data-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(tempDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

/** Write raw files into `<workdir>/stl/` as `ctl data fetch` would leave them. */
export async function writeRaw(workdir: string, pairs: string, categories: string, domain = 'fashion') {
  await mkdir(join(workdir, 'stl'), { recursive: true });
  const pairsFile = join(workdir, 'stl', `${domain}.json`);
  const categoriesFile = join(workdir, 'stl', `${domain}-cat.json`);
  await writeFile(pairsFile, pairs);
  await writeFile(categoriesFile, categories);
  return { pairsFile, categoriesFile };
}

/** The error a promise rejects with; throws when it resolves instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}
