// Who writes an embedding store. A writer (`ctl embed`, or one shard of a `--shard I/N` split; `ctl import
// --embeddings`) holds a lock named for the store and for itself while it adds rows: the same writer twice at once
// would commit the same rows twice, or two different vectors for one id (two files imported together), which
// leaves a store every reader refuses. Writers of other names (the shards of one split) write side by side.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { acquireLock, type Lock, type LockHolder } from '../../util/lock.js';

/** Hold the store in `dir` for `writer`; `busy` words the refusal when another process holds it for that writer. */
export async function lockStoreWriter(
  dir: string,
  writer: string,
  busy: (holder: LockHolder, file: string) => string,
): Promise<Lock> {
  await mkdir(dirname(dir), { recursive: true });
  return acquireLock(`${dir}.${writer}`, busy);
}
