// Who writes an embedding store. A writer (`ctl embed`, or one shard of a `--shard I/N` split; `ctl import
// --embeddings`; `ctl data merge` into the store) holds a lock named for the store and for itself while it adds
// rows: the same writer twice at once would commit the same rows twice, or two different vectors for one id (two
// files imported together), which leaves a store every reader refuses. Writers of other names (the shards of one
// split) write side by side. A stage that uses the rows (train, eval, export, serve) does not open a store while
// any writer holds it: it would take the rows so far for the store (an eval of part of the catalog, a run trained
// on part of the pairs, a catalog served without the products still to come).
import { mkdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { InputError } from '../../util/errors.js';
import { acquireLock, heldBy, otherHolder, type Lock, type LockHolder } from '../../util/lock.js';
import { EmbeddingStore } from './embeddings.js';

/** Hold the store in `dir` for `writer`; `busy` words the refusal when another process holds it for that writer. */
export async function lockStoreWriter(
  dir: string,
  writer: string,
  busy: (holder: LockHolder, file: string) => string,
): Promise<Lock> {
  await mkdir(dirname(dir), { recursive: true });
  return acquireLock(`${dir}.${writer}`, busy);
}

/** Open the store in `dir` to use its rows (EmbeddingStore.open); refused while another process writes it. */
export async function openStoreToRead(dir: string, howToMake?: string): Promise<EmbeddingStore> {
  const writing = await otherHolder(dir, (name) => name.startsWith(`${basename(dir)}.`));
  if (writing)
    throw new InputError(
      `${dir}: another process is adding rows to this store (ctl embed, import or data merge), and what is there ` +
        `now is not all of it: ${heldBy(writing.holder, writing.file)}`,
    );
  return EmbeddingStore.open(dir, howToMake);
}
