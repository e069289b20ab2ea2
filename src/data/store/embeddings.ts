// The embedding store shared by embed, train, eval and serve: float32 matrices as NumPy .npy shards with their row
// ids, and a meta.json saying what the vectors are.
//
//   <dir>/meta.json                     { model, revision, dim, view, preprocessing }
//   <dir>/shards/<writer>-<seq>.ids.json  row ids, in row order
//   <dir>/shards/<writer>-<seq>.npy       float32 [rows, dim]
//
// A shard is committed in two steps: its ids file is created exclusively (claiming the shard's name), then its .npy
// is renamed into place; readers only see shards whose .npy exists and agrees with its ids, so a writer killed at
// any moment resumes from its last complete shard.
// `writer` keeps shards of machines that split the work (`--shard I/N`) apart so their files never collide.
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { cleanTempFiles, writeFileExclusive, writeTemp } from '../../util/atomic.js';
import { InputError } from '../../util/errors.js';
import { firstNonFinite } from '../../util/matrix.js';
import { readJsonIfExists } from '../../util/json.js';
import { int, issueLines, nonEmptyString, object, oneOf, parseWith } from '../../util/schema.js';
import { EMBEDDING_VIEWS } from '../workdir.js';
import { decodeNpy, encodeNpy, parseNpyHeader } from './npy.js';
import type { Signature } from '../types.js';
import { modifiedAt, pathExists } from '../../util/fs.js';

/** meta.json: what the vectors are. */
const storeMetaSchema = object({
  model: nonEmptyString(),
  revision: nonEmptyString().optional(),
  /** A local model folder's absolute path (its name is the model's): where serve finds it again, from any folder. */
  location: nonEmptyString().optional(),
  dim: int(1),
  view: oneOf(EMBEDDING_VIEWS),
  preprocessing: z.record(z.string(), z.unknown()).optional(),
});
export type StoreMeta = z.output<typeof storeMetaSchema>;

/** The id of a scene row embedded with one of its products hidden (view `scenes-hide-product`). */
export function sceneProductKey(scene: Signature, product: Signature): string {
  return `${scene}_${product}`;
}

interface Shard {
  name: string;
  rows: number;
  dataOffset: number;
}

interface RowRef {
  shard: number;
  row: number;
}

const SHARD_RE = /^(.+)-(\d{6})\.npy$/;

/** Vectors and their ids: row i of `data` (row-major, ids.length × dim) is ids[i]'s. */
export interface EmbeddingRows {
  ids: string[];
  data: Float32Array;
}

/** Rows compared at once when an id is in two shards (bounds the memory the check takes). */
const REPEATED_CHUNK = 4096;

export class EmbeddingStore {
  private readonly shards: Shard[] = [];
  private readonly index = new Map<string, RowRef>();
  private readonly order: string[] = [];

  private constructor(
    readonly dir: string,
    readonly meta: StoreMeta,
  ) {}

  get dim(): number {
    return this.meta.dim;
  }

  get size(): number {
    return this.order.length;
  }

  /** Open an existing store; when there is none, an InputError naming the folder and `howToMake` it. */
  static async open(dir: string, howToMake = '`ctl embed` or `ctl data synth --dim D`'): Promise<EmbeddingStore> {
    const meta = await EmbeddingStore.readMeta(dir);
    if (!meta) throw new InputError(`${dir}: no embedding store here (run ${howToMake} first)`);
    const store = new EmbeddingStore(dir, meta);
    await store.loadShards();
    return store;
  }

  /** The meta.json of the store in `dir`, checked; undefined when there is none, an InputError when it is damaged. */
  static async readMeta(dir: string): Promise<StoreMeta | undefined> {
    const file = join(dir, 'meta.json');
    const document = await readJsonIfExists(file);
    if (document === undefined) return undefined;
    const { value: meta, issues } = parseWith(storeMetaSchema, document);
    if (issues) throw new InputError(issueLines(file, issues));
    return meta;
  }

  /** Open the store in `dir`, or null when there is none (no meta.json). */
  static async openIfExists(dir: string): Promise<EmbeddingStore | null> {
    return (await pathExists(join(dir, 'meta.json'))) ? EmbeddingStore.open(dir) : null;
  }

  /**
   * Open the store, or create it with `meta`. Refuses a store whose model, view, dim or revision disagree, or whose
   * vectors were made another way: preprocessing records of other fields (e.g. imported beside embedded).
   */
  static async openOrCreate(dir: string, meta: StoreMeta): Promise<EmbeddingStore> {
    // Created exclusively: of two processes creating the store at once, one meta.json is written, and the other
    // process is checked against it below like against any store it finds (a second write would relabel the
    // first writer's rows).
    const file = join(dir, 'meta.json');
    if (!(await pathExists(file))) await writeFileExclusive(file, JSON.stringify(meta, null, 2) + '\n');
    const store = await EmbeddingStore.open(dir);
    for (const field of ['model', 'view', 'dim', 'revision'] as const) {
      const have = store.meta[field];
      const want = meta[field];
      if (have !== undefined && want !== undefined && have !== want)
        throw new InputError(
          `${join(dir, 'meta.json')}: ${field}: the store holds ${JSON.stringify(have)}, this run asks for ${JSON.stringify(want)} (use another --workdir or remove the store)`,
        );
    }
    // The fields meta.json keeps: one set to undefined here is not written there.
    const fields = (m: StoreMeta) =>
      Object.entries(m.preprocessing ?? {})
        .filter(([, value]) => value !== undefined)
        .map(([key]) => key)
        .sort();
    if (store.meta.preprocessing && meta.preprocessing && `${fields(store.meta)}` !== `${fields(meta)}`)
      throw new InputError(
        `${join(dir, 'meta.json')}: preprocessing: the store's vectors were made another way (${JSON.stringify(store.meta.preprocessing)}), ` +
          `this run's by ${JSON.stringify(meta.preprocessing)}: one store holds vectors of one kind (use another --workdir or remove the store)`,
      );
    return store;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  /** All row ids, in storage order. */
  ids(): string[] {
    return [...this.order];
  }

  /** Commit `ids` and their rows (row-major, `ids.length × dim`) as one new shard. Ids already stored are an error. */
  async append(ids: string[], rows: Float32Array, writer = 'w'): Promise<void> {
    if (ids.length === 0) return;
    if (rows.length !== ids.length * this.dim)
      throw new Error(`append: ${rows.length} values for ${ids.length} rows of dim ${this.dim}`);
    if (!/^[A-Za-z0-9_.]+$/.test(writer))
      throw new Error(`append: writer name ${JSON.stringify(writer)} is not a safe file name`);
    const seen = new Set<string>();
    for (const id of ids) {
      if (this.index.has(id) || seen.has(id)) throw new Error(`append: id ${id} is already in the store`);
      seen.add(id);
    }
    const shardDir = join(this.dir, 'shards');
    // The vectors are on disk first; then the shard's name is claimed by creating its ids file exclusively (another
    // process appending at the same time gets EEXIST and takes the next number), and the vectors take the name. A
    // kill between the last two steps is all that can leave an ids file without its .npy.
    const npy = encodeNpy(rows, [ids.length, this.dim]);
    const vectors = await writeTemp(join(shardDir, `${writer}.npy`), npy);
    let base: string;
    try {
      for (let seq = this.nextSeq(writer); ; seq++) {
        base = `${writer}-${String(seq).padStart(6, '0')}`;
        if (await writeFileExclusive(join(shardDir, `${base}.ids.json`), JSON.stringify(ids))) break;
      }
    } catch (err) {
      await rm(vectors, { force: true });
      throw err;
    }
    await rename(vectors, join(shardDir, `${base}.npy`));
    this.addShard({ name: base, rows: ids.length, dataOffset: npy.length - rows.byteLength }, ids);
  }

  /** Rows of `ids` in the given order; ids not in the store come back as zero rows and are listed in `missing`. */
  async read(ids: string[]): Promise<{ data: Float32Array; missing: string[] }> {
    const refs = ids.map((id) => this.index.get(id));
    const missing = ids.filter((_, i) => refs[i] === undefined);
    return { data: await this.readRows(refs), missing };
  }

  /** The rows `refs` point at, in order; an undefined ref is a zero row. */
  private async readRows(refs: (RowRef | undefined)[]): Promise<Float32Array> {
    const data = new Float32Array(refs.length * this.dim);
    // Group the wanted rows by shard so each shard file is opened once.
    const wanted = new Map<number, { row: number; out: number }[]>();
    refs.forEach((ref, out) => {
      if (!ref) return;
      let list = wanted.get(ref.shard);
      if (!list) wanted.set(ref.shard, (list = []));
      list.push({ row: ref.row, out });
    });
    const rowBytes = this.dim * 4;
    for (const [shardIndex, rows] of wanted) {
      const shard = this.shards[shardIndex];
      const handle = await open(this.shardPath(shard, '.npy'), 'r');
      try {
        if (rows.length * 4 >= shard.rows) {
          // Most of the shard is wanted: one sequential read beats many small ones.
          const all = new Float32Array(shard.rows * this.dim);
          await handle.read(new Uint8Array(all.buffer), 0, all.byteLength, shard.dataOffset);
          for (const { row, out } of rows) data.set(all.subarray(row * this.dim, (row + 1) * this.dim), out * this.dim);
        } else {
          for (const { row, out } of rows)
            await handle.read(
              new Uint8Array(data.buffer, out * rowBytes, rowBytes),
              0,
              rowBytes,
              shard.dataOffset + row * rowBytes,
            );
        }
      } finally {
        await handle.close();
      }
    }
    return data;
  }

  async readAll(): Promise<EmbeddingRows> {
    const ids = this.ids();
    return { ids, data: (await this.read(ids)).data };
  }

  /**
   * Check dims agree and values are finite. (An id in two shards was checked when the store opened: the same
   * bytes twice are harmless, different ones refuse the store.)
   */
  async verify(): Promise<{ ok: boolean; problems: string[]; count: number; dim: number }> {
    const problems: string[] = [];
    for (const shard of this.shards) {
      const file = this.shardPath(shard, '.npy');
      const { data, shape } = decodeNpy(await readFile(file), file);
      if (shape.length !== 2 || shape[1] !== this.dim)
        problems.push(`${file}: shape [${shape}] but meta.json says dim ${this.dim}`);
      const bad = firstNonFinite(data);
      if (bad >= 0) problems.push(`${file}: row ${Math.floor(bad / this.dim)}: value ${data[bad]} is not finite`);
    }
    return { ok: problems.length === 0, problems, count: this.size, dim: this.dim };
  }

  private shardPath(shard: Shard, ext: '.npy' | '.ids.json'): string {
    return join(this.dir, 'shards', `${shard.name}${ext}`);
  }

  private nextSeq(writer: string): number {
    let max = -1;
    for (const s of this.shards) {
      const m = SHARD_RE.exec(`${s.name}.npy`);
      if (m && m[1] === writer) max = Math.max(max, Number(m[2]));
    }
    return max + 1;
  }

  /** Index the shard's rows; an id already indexed keeps its first row and is returned with its new one. */
  private addShard(shard: Shard, ids: string[]): { id: string; again: RowRef }[] {
    const shardIndex = this.shards.push(shard) - 1;
    const repeated: { id: string; again: RowRef }[] = [];
    ids.forEach((id, row) => {
      if (this.index.has(id)) return void repeated.push({ id, again: { shard: shardIndex, row } });
      this.index.set(id, { shard: shardIndex, row });
      this.order.push(id);
    });
    return repeated;
  }

  /**
   * An id in two shards (machines whose work overlapped, shards copied together) is harmless when its rows are
   * the same bytes; different rows leave no way to know which is meant, so the store is refused.
   */
  private async checkRepeated(repeated: { id: string; again: RowRef }[]): Promise<void> {
    const rowBytes = this.dim * 4;
    const bytesOf = (rows: Float32Array, i: number) => Buffer.from(rows.buffer, i * rowBytes, rowBytes);
    let differing = 0;
    let example: { id: string; again: RowRef } | undefined;
    // A chunk at a time: two machines' overlapping shards may repeat most of the store.
    for (let start = 0; start < repeated.length; start += REPEATED_CHUNK) {
      const chunk = repeated.slice(start, start + REPEATED_CHUNK);
      const first = await this.readRows(chunk.map(({ id }) => this.index.get(id)));
      const again = await this.readRows(chunk.map(({ again }) => again));
      chunk.forEach((entry, i) => {
        if (bytesOf(first, i).equals(bytesOf(again, i))) return;
        differing++;
        example ??= entry;
      });
    }
    if (!example) return;
    const [a, b] = [this.shards[this.index.get(example.id)!.shard].name, this.shards[example.again.shard].name];
    const where = a === b ? `twice in ${a}` : `in ${a} and ${b}`;
    throw new InputError(
      `${join(this.dir, 'shards')}: id ${example.id} is ${where} with different vectors ` +
        `(${differing} of the ${repeated.length} repeated ids differ): ` +
        `remove ${a === b ? 'that shard' : 'one of the two shards'} (its .npy and .ids.json), then embed again to fill what it held`,
    );
  }

  private async loadShards(): Promise<void> {
    const shardDir = join(this.dir, 'shards');
    await cleanTempFiles(shardDir);
    let all: string[];
    try {
      all = await readdir(shardDir);
    } catch {
      return; // no shard committed yet
    }
    await removeOrphanClaims(shardDir, all);
    const names = all.filter((n) => SHARD_RE.test(n)).sort();
    const repeated: { id: string; again: RowRef }[] = [];
    for (const file of names) {
      const name = file.slice(0, -'.npy'.length);
      const idsFile = join(shardDir, `${name}.ids.json`);
      let ids: unknown;
      try {
        ids = JSON.parse(await readFile(idsFile, 'utf8'));
      } catch {
        throw new InputError(`${idsFile}: missing or unreadable beside its .npy`);
      }
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string'))
        throw new InputError(`${idsFile}: expected a list of row ids (strings), one per row of its .npy`);
      const path = join(shardDir, file);
      const { head, size } = await readHead(path);
      const header = parseNpyHeader(head, path);
      if (header.shape[0] !== ids.length || header.shape[1] !== this.meta.dim)
        throw new InputError(
          `${path}: shape [${header.shape}] does not match ${ids.length} ids of dim ${this.meta.dim}`,
        );
      // A short file would read as zero rows: a truncated copy must stop here, not train or merge silently.
      const dataBytes = ids.length * this.meta.dim * 4;
      if (size !== header.dataOffset + dataBytes)
        throw new InputError(
          `${path}: ${size - header.dataOffset} bytes of data, but its header says [${header.shape}] float32 ` +
            `(${dataBytes} bytes): the file is truncated or damaged; remove it and its .ids.json, then embed again`,
        );
      for (const entry of this.addShard({ name, rows: ids.length, dataOffset: header.dataOffset }, ids))
        repeated.push(entry);
    }
    await this.checkRepeated(repeated);
  }
}

/** How long a shard's ids file may be without its .npy before it counts as left by a killed writer. */
const ORPHAN_CLAIM_MS = 10 * 60 * 1000;

/**
 * Remove the ids files whose .npy never came (a writer killed between claiming the name and moving its vectors
 * in). A live writer does that within an instant, so only one left alone for minutes is taken for an orphan.
 */
async function removeOrphanClaims(shardDir: string, names: string[]): Promise<void> {
  const present = new Set(names);
  for (const name of names) {
    if (!name.endsWith('.ids.json') || present.has(name.replace(/\.ids\.json$/, '.npy'))) continue;
    const path = join(shardDir, name);
    const modified = await modifiedAt(path);
    if (
      modified !== undefined &&
      Date.now() - modified > ORPHAN_CLAIM_MS &&
      !(await pathExists(path.replace(/\.ids\.json$/, '.npy')))
    )
      await rm(path, { force: true });
  }
}

/** The first bytes of a file (enough for any .npy header this project writes), and its size. */
async function readHead(path: string): Promise<{ head: Uint8Array; size: number }> {
  const handle = await open(path, 'r');
  try {
    const buf = new Uint8Array(4096);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return { head: buf.subarray(0, bytesRead), size: (await handle.stat()).size };
  } finally {
    await handle.close();
  }
}
