// At start, agree the manifest with the files on disk and decide what this run fetches. Files written by a
// killed run after their rename but before their manifest line are checked and adopted, not fetched again.
import { readdir, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { workdirPaths } from '../data/workdir.js';
import { IMAGE_KINDS } from '../data/types.js';
import { manifestKey, type ImageStatus, type ManifestRecord, type ManifestWriter } from './manifest.js';
import type { ImageTarget } from './targets.js';
import { InvalidImage, validateImageFile } from './validate.js';

export interface Plan {
  /** To fetch in this run, in target order. */
  todo: ImageTarget[];
  /** Already settled by an earlier run and left alone, by status. */
  settled: Record<ImageStatus, number>;
  /** Valid files found on disk without an ok record (a kill between rename and manifest line): recorded ok. */
  adopted: number;
  /** Files on disk that failed validation: removed and fetched again. */
  removedInvalid: number;
}

export interface ReconcileOptions {
  workdir: string;
  maxBytes: number;
  /** Ask again for images an earlier run recorded as permanently failed (404, 410, 403, invalid). */
  retryFailed: boolean;
  /** Decode every file on disk, not only those the manifest does not vouch for. */
  verifyExisting: boolean;
  writer: ManifestWriter;
}

/** Files stat-ed (and, when needed, decoded) at once. */
const BATCH = 256;

export async function reconcile(
  targets: ImageTarget[],
  latest: Map<string, ManifestRecord>,
  options: ReconcileOptions,
): Promise<Plan> {
  const paths = workdirPaths(options.workdir);
  const plan: Plan = { todo: [], settled: { ok: 0, missing: 0, invalid: 0, failed: 0 }, adopted: 0, removedInvalid: 0 };
  // One listing per folder, so only files that exist are stat-ed (none on a first run).
  const onDisk = new Set<string>();
  for (const kind of IMAGE_KINDS)
    for (const name of await readdir(paths.images(kind)).catch(() => [])) onDisk.add(`${kind}/${name}`);
  for (let i = 0; i < targets.length; i += BATCH) {
    const batch = targets.slice(i, i + BATCH);
    const decisions = await Promise.all(
      batch.map((t) => {
        const file = paths.imageFile(t.kind, t.sig);
        const exists = onDisk.has(`${t.kind}/${basename(file)}`);
        return decide(t, latest.get(manifestKey(t.kind, t.sig)), exists ? file : undefined, options);
      }),
    );
    batch.forEach((target, j) => {
      const d = decisions[j];
      if (d === 'fetch' || d === 'refetch') plan.todo.push(target);
      if (d === 'refetch') plan.removedInvalid++;
      if (d === 'adopted') plan.adopted++;
      if (typeof d === 'object') plan.settled[d.settled]++;
    });
  }
  return plan;
}

type Decision = 'fetch' | 'refetch' | 'adopted' | { settled: ImageStatus };

/** `file`: the image's path when its folder lists it, else undefined. */
async function decide(
  target: ImageTarget,
  record: ManifestRecord | undefined,
  file: string | undefined,
  options: ReconcileOptions,
): Promise<Decision> {
  const size =
    file === undefined
      ? undefined
      : await stat(file).then(
          (s) => s.size,
          () => undefined,
        );
  if (file === undefined || size === undefined) {
    if (record && record.status !== 'ok' && record.permanent && !options.retryFailed) return { settled: record.status };
    return 'fetch';
  }
  // An ok record of the same size vouches for the file: writes are atomic, so a file is whole or absent.
  if (record?.status === 'ok' && record.bytes === size && !options.verifyExisting) return { settled: 'ok' };
  const started = performance.now();
  try {
    const { format, bytes } = await validateImageFile(file, options.maxBytes);
    if (record?.status !== 'ok' || record.bytes !== bytes) {
      options.writer.append({
        sig: target.sig,
        kind: target.kind,
        status: 'ok',
        attempts: 0,
        bytes,
        ms: Math.round(performance.now() - started),
        reason: 'adopted file on disk',
        format,
        at: new Date().toISOString(),
      });
      return 'adopted';
    }
    return { settled: 'ok' };
  } catch (err) {
    if (!(err instanceof InvalidImage)) throw err;
    await rm(file, { force: true });
    return 'refetch';
  }
}
