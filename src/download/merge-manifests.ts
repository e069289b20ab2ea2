// Merging the download manifests of workdirs that fetched apart (`ctl download --shard I/N`): the latest outcome
// per image wins (by its `at` time; the target's own record on a tie), and the target's manifest is rewritten as one
// line per image, atomically. Merging again changes nothing. The image files themselves stay where they are.
import { writeFileAtomic } from '../util/atomic.js';
import { readManifest, type ManifestRecord } from './manifest.js';

export interface ManifestMergeResult {
  /** Images in the merged manifest. */
  images: number;
  /** Of those, whose record came from a source (new, or newer than the target's). */
  taken: number;
  /** The target's manifest was rewritten (false: it already held every latest record). */
  written: boolean;
}

/**
 * The merge of the manifests at `sourcePaths` into the one at `targetPath`, read and checked; `write()` then writes
 * it (nothing when the target already holds every latest record). The sources are only read.
 */
export async function planManifestMerge(
  sourcePaths: string[],
  targetPath: string,
): Promise<{ result: ManifestMergeResult; write(): Promise<void> }> {
  const { latest: merged, lines } = await readManifest(targetPath);
  let taken = 0;
  for (const path of sourcePaths)
    for (const [key, record] of (await readManifest(path)).latest) {
      const have = merged.get(key);
      if (have && have.at >= record.at) continue;
      merged.set(key, record);
      taken++;
    }
  // Already one line per image and nothing newer: leave the file as it is.
  const written = taken > 0 || lines !== merged.size;
  const text = [...merged.keys()]
    .sort()
    .map((key) => JSON.stringify(merged.get(key) as ManifestRecord) + '\n')
    .join('');
  return {
    result: { images: merged.size, taken, written },
    write: async () => {
      if (written) await writeFileAtomic(targetPath, text);
    },
  };
}
