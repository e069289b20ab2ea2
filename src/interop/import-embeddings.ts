// `ctl import --embeddings`: the reference's embedding file into ctl's embedding store, checked against the
// dataset (its signatures) and the model's other stores (their dim). Resumable: rows already stored are skipped
// when they are the same vectors, and refused when they are not.
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { loadDataset } from '../data/stl/dataset-io.js';
import { EmbeddingStore, sceneProductKey } from '../data/store/embeddings.js';
import type { Domain, ImageKind } from '../data/types.js';
import { EMBEDDING_VIEWS, workdirPaths, type EmbeddingView } from '../data/workdir.js';
import { lockStoreWriter } from '../data/store/writers.js';
import { InputError } from '../util/errors.js';
import { heldBy } from '../util/lock.js';
import { gatherRows } from '../util/matrix.js';
import { readEmbeddingsFile, type EmbeddingsFile } from './embeddings-file.js';

export interface ImportEmbeddingsOptions {
  workdir: string;
  file: string;
  kind: ImageKind;
  model: string;
  /** The scene view the vectors are (default scenes-full); products always go to the products view. */
  view?: EmbeddingView;
  domain: Domain;
}

export interface ImportEmbeddingsSummary {
  file: string;
  store: string;
  view: EmbeddingView;
  dim: number;
  rows: number;
  imported: number;
  alreadyStored: number;
  /** Rows whose signature the dataset does not have (kept: they cost nothing), or null without a dataset. */
  notInDataset: number | null;
}

/** Rows committed per shard: a killed import resumes from its last complete shard. */
const ROWS_PER_SHARD = 4096;
/** The store's shards and lock name this writer (see data/store/writers.ts). */
const IMPORT_WRITER = 'import';

export async function importEmbeddings(options: ImportEmbeddingsOptions): Promise<ImportEmbeddingsSummary> {
  const view: EmbeddingView = options.kind === 'products' ? 'products' : (options.view ?? 'scenes-full');
  if (options.kind === 'products' && options.view && options.view !== 'products')
    throw new InputError(`--view ${options.view} is a scene view; product embeddings go to the products view`);
  if (options.kind === 'scenes' && view === 'products')
    throw new InputError('--view products is not a scene view (scenes-full or scenes-hide-product)');

  const rows = await readEmbeddingsFile(options.file);
  const paths = workdirPaths(options.workdir);
  const notInDataset = await countUnknown(options, rows.ids, view);
  await checkOtherStores(options, view, rows.dim);

  const dir = paths.embeddings(options.model, view);
  // Another import into the store at the same moment would check its rows against the store as it was, and both
  // could commit their vectors for the same ids.
  const lock = await lockStoreWriter(
    dir,
    IMPORT_WRITER,
    (holder, file) => `${dir}: another ctl import is writing this store: ${heldBy(holder, file)}`,
  );
  let imported: number;
  try {
    imported = await appendNewRows(options, dir, view, rows);
  } finally {
    await lock.release();
  }
  return {
    file: options.file,
    store: dir,
    view,
    dim: rows.dim,
    rows: rows.ids.length,
    imported,
    alreadyStored: rows.ids.length - imported,
    notInDataset,
  };
}

/** Append the file's rows the store does not hold yet (checking those it holds); returns how many. */
async function appendNewRows(
  options: ImportEmbeddingsOptions,
  dir: string,
  view: EmbeddingView,
  rows: EmbeddingsFile,
): Promise<number> {
  const store = await EmbeddingStore.openOrCreate(dir, {
    model: options.model,
    dim: rows.dim,
    view,
    preprocessing: { importedFrom: basename(options.file) },
  });
  const [stored, fresh]: number[][] = [[], []];
  rows.ids.forEach((id, i) => (store.has(id) ? stored : fresh).push(i));
  await checkSameAsStored(options, store, rows, stored);
  for (let start = 0; start < fresh.length; start += ROWS_PER_SHARD) {
    const chunk = fresh.slice(start, start + ROWS_PER_SHARD);
    await store.append(
      chunk.map((row) => rows.ids[row]),
      gatherRows(rows.data, chunk, rows.dim),
      IMPORT_WRITER,
    );
  }
  return fresh.length;
}

/**
 * The rows the store already holds must be the file's very vectors (a killed import run again): other ones are
 * refused, naming the first, since the store keeps one vector per id and training would take the old one.
 */
async function checkSameAsStored(
  options: ImportEmbeddingsOptions,
  store: EmbeddingStore,
  rows: EmbeddingsFile,
  stored: number[],
): Promise<void> {
  const dim = rows.dim;
  const want = new Uint32Array(rows.data.buffer, rows.data.byteOffset, rows.data.length); // bits: NaN = NaN too
  for (let start = 0; start < stored.length; start += ROWS_PER_SHARD) {
    const chunk = stored.slice(start, start + ROWS_PER_SHARD);
    const have = new Uint32Array((await store.read(chunk.map((row) => rows.ids[row]))).data.buffer);
    const k = chunk.findIndex((row, i) => {
      for (let e = 0; e < dim; e++) if (have[i * dim + e] !== want[row * dim + e]) return true;
      return false;
    });
    if (k >= 0)
      throw new InputError(
        `${options.file}: ${rows.ids[chunk[k]]}: the '${options.model}' ${store.meta.view} store (${store.dir}) ` +
          `holds another vector for it: import into another --model, or remove the store to replace its vectors`,
      );
  }
}

/** How many ids the dataset lacks; an error when it has none of them (most likely the wrong --kind or --view). */
async function countUnknown(
  options: ImportEmbeddingsOptions,
  ids: string[],
  view: EmbeddingView,
): Promise<number | null> {
  try {
    await stat(workdirPaths(options.workdir).dataset(options.domain));
  } catch {
    return null; // no dataset yet: `ctl data fetch` may come later
  }
  const dataset = await loadDataset(options.workdir, options.domain);
  const known = new Set<string>(
    view === 'products'
      ? dataset.products.map((p) => p.sig)
      : view === 'scenes-full'
        ? dataset.scenes.map((s) => s.sig)
        : dataset.pairs.map((p) => sceneProductKey(p.scene, p.product)),
  );
  const unknown = ids.filter((id) => !known.has(id)).length;
  if (unknown === ids.length)
    throw new InputError(
      `${options.file}: none of its ${ids.length} signatures is a ${options.kind === 'products' ? 'product' : 'scene'} of the ${options.domain} dataset (wrong --kind?)`,
    );
  return unknown;
}

/** The model's stores of the other views must hold vectors of the same dim: train pairs scenes with products. */
async function checkOtherStores(options: ImportEmbeddingsOptions, view: EmbeddingView, dim: number): Promise<void> {
  const paths = workdirPaths(options.workdir);
  for (const other of EMBEDDING_VIEWS) {
    if (other === view) continue;
    let store: EmbeddingStore;
    try {
      store = await EmbeddingStore.open(paths.embeddings(options.model, other));
    } catch {
      continue; // not there (yet)
    }
    if (store.dim !== dim)
      throw new InputError(
        `${options.file}: ${dim}-d vectors, but the ${other} embeddings of '${options.model}' in ${store.dir} are ${store.dim}-d`,
      );
  }
}
