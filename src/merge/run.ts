// `ctl data merge` as a function: fold the workdirs of a sharded run (one per `--shard I/N` process) into one.
// What merges: every embedding store (embeddings/<model>/<view>/), the download manifest, and the normalised
// datasets (copied when the target has none; the shards' copies must be identical). Image files stay in the shard
// workdirs, and the shards are only read. Everything is read and checked before anything is written, so a refusal
// leaves the target as it was.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { lockMergeTarget, planStoreMerge } from '../data/store/merge.js';
import { DOMAINS } from '../data/types.js';
import { workdirPaths } from '../data/workdir.js';
import { planManifestMerge, type ManifestMergeResult } from '../download/merge-manifests.js';
import { writeFileAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { isDirectory, pathExists, realFolder } from '../util/fs.js';
import { acquireLock, heldBy, type Lock } from '../util/lock.js';

export interface StoreMergeSummary {
  /** embeddings/<model>/<view>, relative to the workdir. */
  store: string;
  sources: number;
  added: number;
  alreadyThere: number;
  stored: number;
}

export interface MergeSummary {
  workdir: string;
  from: string[];
  stores: StoreMergeSummary[];
  manifest: ManifestMergeResult | null;
  /** Dataset files copied into the workdir. */
  datasets: string[];
}

/** embeddings/<model>/<view> folders that hold a store (meta.json), relative to the workdir. */
async function storesIn(workdir: string): Promise<string[]> {
  const root = workdirPaths(workdir).embeddingsDir;
  const found: string[] = [];
  for (const model of await readdir(root).catch(() => []))
    for (const view of await readdir(join(root, model)).catch(() => []))
      if (await pathExists(join(root, model, view, 'meta.json')))
        found.push(relative(workdir, join(root, model, view)));
  return found.sort();
}

/** Each domain's dataset of the sources: copied when the target lacks it; two copies that disagree are refused. */
async function planDatasets(
  from: string[],
  workdir: string,
): Promise<{ source: string; target: string; bytes: Buffer }[]> {
  const plan: { source: string; target: string; bytes: Buffer }[] = [];
  for (const domain of DOMAINS) {
    let first: { source: string; bytes: Buffer } | undefined;
    for (const dir of from) {
      const source = workdirPaths(dir).dataset(domain);
      const bytes = await readFile(source).catch(() => undefined);
      if (!bytes) continue;
      if (first && !first.bytes.equals(bytes))
        throw new InputError(`${source} differs from ${first.source}: the shards were not run on the same dataset`);
      first ??= { source, bytes };
    }
    if (!first) continue;
    const target = workdirPaths(workdir).dataset(domain);
    const have = await readFile(target).catch(() => undefined);
    if (!have) plan.push({ target, ...first });
    else if (!have.equals(first.bytes))
      throw new InputError(`${target} differs from ${first.source}: the shards were run on another dataset`);
  }
  return plan;
}

export async function mergeWorkdirs(fromDirs: string[], workdir: string): Promise<MergeSummary> {
  const from = fromDirs.map((d) => resolve(d));
  const target = await realFolder(workdir);
  for (const dir of from) {
    if (!(await isDirectory(dir))) throw new InputError(`--from ${dir}: not a folder`);
    const source = await realFolder(dir);
    if (target === source) throw new InputError(`--from ${dir}: is the target --workdir; merge from others`);
    if (target.startsWith(source + sep))
      throw new InputError(`--workdir ${workdir}: is inside --from ${dir}, which is only read; merge into another`);
  }
  // One merge into a workdir at a time: each plans from the target as it finds it, and would add the same rows. The
  // lock sits beside the workdir (links followed, so two names of one folder share it): a refused merge leaves no new
  // folder.
  await mkdir(dirname(target), { recursive: true });
  const lock = await acquireLock(
    target,
    (holder, file) => `another ctl data merge into ${workdir} is running: ${heldBy(holder, file)}`,
  );
  try {
    return await mergeLocked(from, workdir);
  } finally {
    await lock.release();
  }
}

async function mergeLocked(from: string[], workdir: string): Promise<MergeSummary> {
  const byStore = new Map<string, string[]>();
  for (const dir of from)
    for (const store of await storesIn(dir)) byStore.set(store, [...(byStore.get(store) ?? []), join(dir, store)]);
  const plans = [];
  for (const [store, dirs] of [...byStore].sort())
    plans.push({ store, plan: await planStoreMerge(dirs, join(workdir, store)) });
  const datasets = await planDatasets(from, workdir);
  const manifests = [];
  for (const dir of from)
    if (await pathExists(workdirPaths(dir).imageManifest)) manifests.push(workdirPaths(dir).imageManifest);
  const manifest = manifests.length ? await planManifestMerge(manifests, workdirPaths(workdir).imageManifest) : null;

  // Every target store is held until the whole merge is written: a stage started meanwhile is refused, rather than
  // finding one store merged and the next one not yet, or the stores without their dataset.
  const stores: StoreMergeSummary[] = [];
  const storeLocks: Lock[] = [];
  try {
    for (const { plan } of plans) storeLocks.push(await lockMergeTarget(plan.target));
    for (const { store, plan } of plans) {
      const { added, stored } = await plan.apply();
      stores.push({ store, sources: plan.sources.length, added, alreadyThere: plan.alreadyThere, stored });
    }
    for (const { target, bytes } of datasets) await writeFileAtomic(target, bytes);
    await manifest?.write();
  } finally {
    for (const lock of storeLocks) await lock.release();
  }

  return {
    workdir,
    from,
    stores,
    manifest: manifest?.result ?? null,
    datasets: datasets.map((d) => relative(workdir, d.target)),
  };
}
