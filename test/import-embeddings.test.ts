// `ctl import --embeddings` as a function, on .npz files written here (no NumPy needed): what two imports into one
// store at once leave.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { encodeNpy } from '../src/data/store/npy.js';
import { workdirPaths } from '../src/data/workdir.js';
import { importEmbeddings } from '../src/interop/import-embeddings.js';
import { lockStoreWriter } from '../src/data/store/writers.js';
import { writeZip } from '../src/model/torch/zip.js';

let workdir: string;
beforeEach(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'ctl-import-embeddings-'));
});
afterEach(async () => {
  await rm(workdir, { recursive: true, force: true });
});

/** An .npz as `np.savez(file, **{id: vector})` writes it: one `<id>.npy` entry per vector. */
async function writeNpz(name: string, vectors: Record<string, number[]>): Promise<string> {
  const file = join(workdir, name);
  const entries = Object.entries(vectors).map(([id, v]) => ({
    name: `${id}.npy`,
    data: encodeNpy(Float32Array.from(v), [v.length]),
  }));
  await writeFile(file, writeZip(entries));
  return file;
}

/** Import `file` as the products of model `ref`. */
const options = (file: string) => ({
  workdir,
  file,
  kind: 'products' as const,
  model: 'ref',
  domain: 'fashion' as const,
});

describe('ctl import --embeddings', () => {
  it('two files imported into one store at once: one goes in, the other is refused', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => i.toString(16).padStart(32, '0'));
    const files = await Promise.all(
      [1, 2].map((k) => writeNpz(`v${k}.npz`, Object.fromEntries(ids.map((id, i) => [id, [k, i, -i]])))),
    );
    const imports = await Promise.allSettled(files.map((file) => importEmbeddings(options(file))));
    expect(imports.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const dir = workdirPaths(workdir).embeddings('ref', 'products');
    const refused = imports.find((r) => r.status === 'rejected')!;
    // Refused by the lock while the other writes, or, when it got the lock only after the other let go, by the
    // vectors the store holds by then: which depends on how the two interleave.
    expect(String(refused.reason)).toMatch(
      new RegExp(`${dir}: another ctl import is writing this store: process|${dir}\\) holds another vector for it`),
    );
    const store = await EmbeddingStore.open(dir); // one vector per id: the store reads
    expect(store.size).toBe(ids.length);
  });

  it('an import into a store another import is writing is refused, naming its process', async () => {
    const file = await writeNpz('v.npz', { ['0'.repeat(32)]: [1, 2, 3] });
    const dir = workdirPaths(workdir).embeddings('ref', 'products');
    const other = await lockStoreWriter(dir, 'import', () => 'busy'); // as a ctl import writing it holds it
    try {
      await expect(importEmbeddings(options(file))).rejects.toThrow(
        new RegExp(`${dir}: another ctl import is writing this store: process ${process.pid} on`),
      );
    } finally {
      await other.release();
    }
    expect((await importEmbeddings(options(file))).imported).toBe(1);
  });
});
