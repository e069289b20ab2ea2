// `ctl data fetch`: download the released pairs and category files of a domain, validate them, and only then move
// them into workdir/stl/ and write the normalised dataset. Idempotent: a manifest records what was fetched, and a
// second run with the files and dataset in place does no work unless forced.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Dataset } from '../dataset.js';
import type { Domain } from '../types.js';
import { loadDataset, normaliseRaw, normaliseWorkdir, saveDataset, type NormaliseReport } from './dataset-io.js';
import { downloadFile, type FileDownloadOptions, type Downloaded } from './http-download.js';
import { cleanTempFiles, tempPathFor, writeJsonAtomic } from '../../util/atomic.js';
import { log } from '../../util/log.js';
import { workdirPaths } from '../workdir.js';
import { STL_BASE_URL } from './sources.js';

export interface FetchOptions extends FileDownloadOptions {
  domain: Domain;
  baseUrl?: string;
  strict?: boolean;
  /** Download and normalise again even when everything is in place. */
  force?: boolean;
}

interface FetchManifest {
  baseUrl: string;
  /** The downloaded files, by name in workdir/stl/. */
  files: { url: string; name: string; bytes: number; sha256: string }[];
  fetchedAt: string;
}

export interface FetchResult {
  /** `up-to-date`: nothing done; `normalised`: files were in place, the dataset was rebuilt; `fetched`: downloaded. */
  status: 'up-to-date' | 'normalised' | 'fetched';
  dataset: Dataset;
  report?: NormaliseReport;
  manifest: FetchManifest;
  datasetPath: string;
}

export async function fetchDomain(workdir: string, options: FetchOptions): Promise<FetchResult> {
  const { domain, strict = false } = options;
  const baseUrl = (options.baseUrl ?? STL_BASE_URL).replace(/\/+$/, '');
  const paths = workdirPaths(workdir);
  const targets = [
    { url: `${baseUrl}/${domain}.json`, path: paths.rawPairs(domain) },
    { url: `${baseUrl}/${domain}-cat.json`, path: paths.rawCategories(domain) },
  ];
  const datasetPath = paths.dataset(domain);

  const manifest = options.force ? undefined : await readFetchManifest(workdir, domain, baseUrl, targets);
  if (manifest) {
    const dataset = await loadDataset(workdir, domain).catch(() => undefined);
    const cleanEnough = !strict || Object.keys(dataset?.skipped ?? {}).length === 0;
    if (dataset?.source === 'stl' && cleanEnough) {
      log(`${domain}: files and dataset in place (${datasetPath}); nothing to do (--force to fetch again)`);
      return { status: 'up-to-date', dataset, manifest, datasetPath };
    }
    log(`${domain}: files in place, normalising`);
    const { dataset: fresh, report } = await normaliseWorkdir(workdir, domain, { strict, source: 'stl' });
    return { status: 'normalised', dataset: fresh, report, manifest, datasetPath };
  }

  // Download both files beside their destination, validate them there, and move them in only when both are good.
  await mkdir(dirname(targets[0]!.path), { recursive: true });
  await cleanTempFiles(dirname(targets[0]!.path));
  const temps = targets.map((t) => tempPathFor(t.path));
  try {
    const downloads: Downloaded[] = [];
    for (const [i, target] of targets.entries()) {
      log(`downloading ${target.url}`);
      downloads.push(await downloadFile(target.url, temps[i]!, options));
    }
    const { dataset, report } = await normaliseRaw(temps[0]!, temps[1]!, {
      strict,
      domain,
      source: 'stl',
      names: { pairs: targets[0]!.url, categories: targets[1]!.url },
    });
    for (const [i, target] of targets.entries()) await rename(temps[i]!, target.path);
    const fresh: FetchManifest = {
      baseUrl,
      files: targets.map((t, i) => ({
        url: t.url,
        name: basename(t.path),
        bytes: downloads[i]!.bytes,
        sha256: downloads[i]!.sha256,
      })),
      fetchedAt: new Date().toISOString(),
    };
    // The manifest last: it is what marks the fetch done, so a kill before it means fetching again.
    await saveDataset(workdir, dataset);
    await writeJsonAtomic(workdirPaths(workdir).fetchManifest(domain), fresh);
    return { status: 'fetched', dataset, report, manifest: fresh, datasetPath };
  } finally {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
  }
}

/** The manifest of a previous fetch from the same base URL whose files are still there, unchanged. */
async function readFetchManifest(
  workdir: string,
  domain: Domain,
  baseUrl: string,
  targets: { url: string; path: string }[],
): Promise<FetchManifest | undefined> {
  try {
    const manifest = JSON.parse(await readFile(workdirPaths(workdir).fetchManifest(domain), 'utf8')) as FetchManifest;
    if (manifest.baseUrl !== baseUrl) return undefined;
    for (const target of targets) {
      const entry = manifest.files.find((f) => f.url === target.url);
      if (!entry || (await stat(target.path)).size !== entry.bytes) return undefined;
      // Same size is not enough: `ctl data synth` writes the same file names.
      if ((await sha256File(target.path)) !== entry.sha256) return undefined;
    }
    return manifest;
  } catch {
    return undefined;
  }
}

async function sha256File(path: string): Promise<string> {
  const digest = createHash('sha256');
  for await (const chunk of createReadStream(path)) digest.update(chunk as Buffer);
  return digest.digest('hex');
}
