// The locks of `ctl download` runs, named for what each fetches: two runs that may fetch a same image are not run
// at once, and another stage (`ctl embed`) can tell whether a run may still bring the images it misses. Apart from
// the download loop, so that asking does not load it.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, heldBy, otherHolder, type Lock } from '../util/lock.js';
import type { ImageKind } from '../data/types.js';
import type { Shard } from '../data/shard.js';
import type { ImageTarget } from './targets.js';

/** What a run's lock says it fetches: one image kind or all, and its shard of N. */
interface LockedSelection {
  kind: ImageKind | 'all';
  shard?: Shard;
}

/**
 * Hold this run's lock, named for its selection (`download-<kind>[-shard-I-of-N]`), refused while a live run holds
 * one whose selection may share an image with it: two such runs would fetch the shared images twice and write
 * their manifest lines twice. Only selections that cannot share one run side by side: different kinds, and
 * different shards of one N (shards of another N, a `--limit` or no shard at all may take any image of the kind).
 */
export async function lockTargets(imagesDir: string, targets: ImageTarget[], shard: Shard | undefined): Promise<Lock> {
  const kinds = new Set(targets.map((t) => t.kind));
  const mine: LockedSelection = { kind: kinds.size === 1 ? [...kinds][0] : 'all', shard };
  await mkdir(imagesDir, { recursive: true });
  return acquireLock(
    join(imagesDir, lockName(mine)),
    (holder, file, name) =>
      `another ctl download that may fetch the same images is running (${describeLock(name)}): ` + heldBy(holder, file),
    heldForOverlap(mine),
  );
}

const LOCK_NAME = /^download-(scenes|products|all)(?:-shard-(\d+)-of-(\d+))?$/;

function lockName({ kind, shard }: LockedSelection): string {
  return `download-${kind}${shard ? `-shard-${shard.index}-of-${shard.count}` : ''}`;
}

/** The selection a lock's name stands for; undefined for a name that is not a download lock's. */
function selectionOfLock(name: string): LockedSelection | undefined {
  const m = LOCK_NAME.exec(name);
  if (!m) return undefined;
  const shard = m[2] === undefined ? undefined : { index: Number(m[2]), count: Number(m[3]) };
  return { kind: m[1] as LockedSelection['kind'], shard };
}

/** Can two runs' selections hold a same image? Yes, unless of different kinds or different shards of one N. */
function mayOverlap(a: LockedSelection, b: LockedSelection): boolean {
  const sameKind = a.kind === 'all' || b.kind === 'all' || a.kind === b.kind;
  const otherShard = a.shard && b.shard && a.shard.count === b.shard.count && a.shard.index !== b.shard.index;
  return sameKind && !otherShard;
}

/** Is the lock of this name a download's whose selection may share an image with `mine`? */
function heldForOverlap(mine: LockedSelection): (name: string) => boolean {
  return (name) => {
    const theirs = selectionOfLock(name);
    return theirs !== undefined && mayOverlap(mine, theirs);
  };
}

/** What the run that holds a download lock fetches, from the lock's name. */
function describeLock(name: string): string {
  const theirs = selectionOfLock(name);
  if (!theirs) return name;
  const kind = theirs.kind === 'all' ? 'scenes and products' : theirs.kind;
  return `fetching ${kind}${theirs.shard ? `, shard ${theirs.shard.index}/${theirs.shard.count}` : ''}`;
}

/**
 * The `ctl download` running in `imagesDir` that may fetch images of `kind`, described with its process (for a
 * message); null when none does.
 */
export async function runningDownload(imagesDir: string, kind: ImageKind | 'all'): Promise<string | null> {
  const running = await otherHolder(join(imagesDir, 'download'), heldForOverlap({ kind }));
  return running && heldBy(running.holder, running.file);
}
