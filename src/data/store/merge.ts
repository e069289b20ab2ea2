// Merging embedding stores written apart (`ctl embed --shard I/N` on N machines) into one. Every check runs before
// anything is written: the stores must say the same thing in meta.json (model, revision, dim, view,
// preprocessing), and a row present in two of them must be the same bytes. Rows the target already holds are left
// alone, so merging again adds nothing.
import { join } from 'node:path';
import { InputError } from '../../util/errors.js';
import { heldBy, type Lock } from '../../util/lock.js';
import { realFolder } from '../../util/fs.js';
import { differingPaths, valueAt } from '../../util/json.js';
import { EmbeddingStore, type StoreMeta } from './embeddings.js';
import { lockStoreWriter } from './writers.js';

/** Shards written by a merge, and its lock on the store, are named after it, apart from `ctl embed`'s writers. */
const MERGE_WRITER = 'merged';
/** Rows read and appended at once: bounds memory and makes one store shard each. */
const CHUNK_ROWS = 8192;

export interface StoreMergePlan {
  target: string;
  sources: string[];
  /** Rows the merge adds, per source. */
  toAdd: number[];
  /** Rows already in the target or in an earlier source (checked equal). */
  alreadyThere: number;
  /** Write the rows; the target is created with the sources' meta when it does not exist. */
  apply(): Promise<{ added: number; stored: number }>;
}

/** Hold the target store as its writer while the merge applies (a stage reading it meanwhile is refused). */
export function lockMergeTarget(targetDir: string): Promise<Lock> {
  return lockStoreWriter(
    targetDir,
    MERGE_WRITER,
    (holder, file) => `${targetDir}: another ctl data merge is writing this store: ${heldBy(holder, file)}`,
  );
}

/** Open the stores, check they agree, and work out which rows go where. Throws InputError naming the first problem. */
export async function planStoreMerge(sourceDirs: string[], targetDir: string): Promise<StoreMergePlan> {
  const target = await EmbeddingStore.openIfExists(targetDir);
  const sources: EmbeddingStore[] = [];
  const targetFolder = await realFolder(targetDir);
  for (const dir of sourceDirs) {
    if ((await realFolder(dir)) === targetFolder)
      throw new InputError(`${dir}: is the merge's target; merge from others`);
    sources.push(await EmbeddingStore.open(dir));
  }
  const stores = target ? [target, ...sources] : sources;
  const reference = stores[0];
  // Where a local model folder was (`location`) differs by machine, and earlier versions did not record it.
  const settings = ({ location: _, ...meta }: StoreMeta) => meta;
  for (const store of stores.slice(1)) {
    const [diff] = differingPaths(settings(reference.meta), settings(store.meta));
    if (diff !== undefined)
      throw new InputError(
        `${join(store.dir, 'meta.json')}: ${diff || '(the whole value)'}: ${JSON.stringify(valueAt(store.meta, diff))} here, ` +
          `${JSON.stringify(valueAt(reference.meta, diff))} in ${join(reference.dir, 'meta.json')}; ` +
          'only stores embedded with the same settings merge',
      );
  }

  // Each row goes to the first store that holds it; a later copy must be the same bytes.
  const owner = new Map<string, EmbeddingStore>();
  const repeats = new Map<EmbeddingStore, Map<EmbeddingStore, string[]>>(); // again → first → ids
  let alreadyThere = 0;
  for (const store of stores) {
    const again = new Map<EmbeddingStore, string[]>();
    repeats.set(store, again);
    for (const id of store.ids()) {
      const first = owner.get(id);
      if (!first) owner.set(id, store);
      else {
        if (!again.has(first)) again.set(first, []);
        again.get(first)!.push(id);
        alreadyThere++;
      }
    }
  }
  for (const [again, byFirst] of repeats) for (const [first, ids] of byFirst) await checkSameRows(first, again, ids);

  const adds = sources.map((store) => store.ids().filter((id) => owner.get(id) === store));
  return {
    target: targetDir,
    sources: sourceDirs,
    toAdd: adds.map((ids) => ids.length),
    alreadyThere,
    async apply() {
      const into = target ?? (await EmbeddingStore.openOrCreate(targetDir, reference.meta));
      let added = 0;
      for (const [s, ids] of adds.entries())
        for (let i = 0; i < ids.length; i += CHUNK_ROWS) {
          const chunk = ids.slice(i, i + CHUNK_ROWS);
          await into.append(chunk, (await sources[s].read(chunk)).data, MERGE_WRITER);
          added += chunk.length;
        }
      return { added, stored: into.size };
    },
  };
}

/** Refuse, naming the row, when `ids` are not the same bytes in both stores. */
async function checkSameRows(first: EmbeddingStore, again: EmbeddingStore, ids: string[]): Promise<void> {
  const dim = first.dim;
  for (let i = 0; i < ids.length; i += CHUNK_ROWS) {
    const chunk = ids.slice(i, i + CHUNK_ROWS);
    const a = new Uint32Array((await first.read(chunk)).data.buffer);
    const b = new Uint32Array((await again.read(chunk)).data.buffer);
    const k = a.findIndex((bits, j) => bits !== b[j]);
    if (k < 0) continue;
    const [row, element] = [Math.floor(k / dim), k % dim];
    const value = (bits: Uint32Array) => new Float32Array(bits.buffer)[k];
    throw new InputError(
      `row ${chunk[row]}: ${again.dir} and ${first.dir} hold different vectors (element ${element}: ` +
        `${value(b)} vs ${value(a)}); refusing to merge: were they embedded with another --batch, --dtype, device or software?`,
    );
  }
}
