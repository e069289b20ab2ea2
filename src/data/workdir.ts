// The workdir layout, in one place: every stage reads the previous one's output from here.
import { join } from 'node:path';
import { InputError } from '../util/errors.js';
import type { Domain, ImageKind } from './types.js';
import { subfolders } from '../util/fs.js';

/**
 * A model id as a folder name: "Marqo/marqo-fashionSigLIP" → "Marqo--marqo-fashionSigLIP". A name with an empty,
 * "." or ".." part is refused: it reads as a path (and ".." would be a folder outside the embeddings); so is one
 * without a letter or digit (" " and "~" would share the folder "_").
 */
export function modelSlug(modelId: string): string {
  if (
    !/[A-Za-z0-9]/.test(modelId) ||
    modelId.split(/[\\/]/).some((part) => part === '' || part === '.' || part === '..')
  )
    throw new InputError(
      `model name ${JSON.stringify(modelId)}: expected a name such as '${SYNTH_MODEL}' or owner/name, not a path`,
    );
  return modelId.replace(/[\\/]+/g, '--').replace(/[^A-Za-z0-9._-]/g, '_');
}

/** The model id of the embedding stores `ctl data synth --dim` writes. */
export const SYNTH_MODEL = 'synthetic';

/** Which embedding matrix: product images, whole scenes, or scenes with one product's box hidden. */
export const EMBEDDING_VIEWS = ['products', 'scenes-full', 'scenes-hide-product'] as const;
export type EmbeddingView = (typeof EMBEDDING_VIEWS)[number];

/** How a scene is embedded: whole, or with the pair's product hidden. */
export const SCENE_VIEWS = ['full', 'hide-product'] as const;
export type SceneView = (typeof SCENE_VIEWS)[number];

/** The store of a scene view's embeddings. */
export const sceneViewStore = (view: SceneView): EmbeddingView =>
  view === 'full' ? 'scenes-full' : 'scenes-hide-product';

export function workdirPaths(workdir: string) {
  return {
    root: workdir,
    rawPairs: (domain: Domain) => join(workdir, 'stl', `${domain}.json`),
    rawCategories: (domain: Domain) => join(workdir, 'stl', `${domain}-cat.json`),
    /** What `ctl data fetch` downloaded (sizes and digests), beside the raw files. */
    fetchManifest: (domain: Domain) => join(workdir, 'stl', `${domain}.fetch.json`),
    /** What `ctl data synth` generated the raw files with, beside them. */
    synthMarker: (domain: Domain) => join(workdir, 'stl', `${domain}.synth.json`),
    dataset: (domain: Domain) => join(workdir, 'dataset', `${domain}.json`),
    imagesDir: join(workdir, 'images'),
    images: (kind: ImageKind) => join(workdir, 'images', kind),
    imageFile: (kind: ImageKind, sig: string) => join(workdir, 'images', kind, `${sig}.jpg`),
    imageManifest: join(workdir, 'images', 'manifest.jsonl'),
    modelsDir: join(workdir, 'models'),
    embeddingsDir: join(workdir, 'embeddings'),
    embeddings: (modelId: string, view: EmbeddingView) => join(workdir, 'embeddings', modelSlug(modelId), view),
    runsDir: join(workdir, 'runs'),
    run: (name: string) => join(workdir, 'runs', name),
    /** The zero-shot baseline's eval reports (raw embeddings, no run). */
    zeroShotReports: (modelId: string, view: SceneView) => join(workdir, 'eval', 'zero-shot', modelSlug(modelId), view),
    /** `ctl demo`'s own workdir, inside this one. */
    demo: join(workdir, 'demo'),
  };
}

export type WorkdirPaths = ReturnType<typeof workdirPaths>;

/** What a run's folder holds besides its checkpoints (model/checkpoint.ts lays those out). */
export function runPaths(runDir: string) {
  return {
    /** The resolved config the run started with, its overrides and data summary (train/run-record.ts). */
    config: join(runDir, 'config.json'),
    /** One JSON line per logged step and epoch. */
    metrics: join(runDir, 'metrics.jsonl'),
    /** `ctl eval`'s reports (see evalReportFile). */
    evalDir: join(runDir, 'eval'),
  };
}

/**
 * An eval report's file name: `<protocol>-<part>.json` for the best checkpoint (and the zero-shot baseline), with
 * `-<checkpoint>` before `.json` for another, so evaluating `last` never replaces `best`'s report.
 */
export function evalReportFile(protocol: string, part: string, checkpoint = 'best'): string {
  return `${protocol}-${part}${checkpoint === 'best' ? '' : `-${checkpoint}`}.json`;
}

/** A run's name, its folder under runs/: letters, digits, '.', '_', '-'; not first a '.' (no '..', nothing hidden). */
export const RUN_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * `name`, when it can name a run; else an InputError naming where the name came from (`source`), saying what a name
 * may hold (and `hint`, what to do).
 */
export function checkRunName(name: string, hint = '', source = '--run'): string {
  if (!RUN_NAME.test(name))
    throw new InputError(
      `${source}: '${name}' is not a valid run name (letters, digits, . _ -; not starting with .)${hint ? `: ${hint}` : ''}`,
    );
  if (name.length > MAX_RUN_NAME)
    throw new InputError(
      `${source}: '${name.slice(0, 24)}…' is too long for a run name (${name.length} characters, at most ` +
        `${MAX_RUN_NAME})${hint ? `: ${hint}` : ''}`,
    );
  return name;
}

/** A run's folder name, leaving room under the file system's 255 bytes for the lock and temporary files beside it. */
const MAX_RUN_NAME = 200;

/** The runs of a workdir: the folders under runs/ with a run's name, sorted. */
export async function listRunNames(workdir: string): Promise<string[]> {
  return (await subfolders(workdirPaths(workdir).runsDir)).filter((name) => RUN_NAME.test(name));
}

/** The folder of the workdir's run `name`; an InputError naming the runs it has when there is none of that name. */
export async function existingRunDir(workdir: string, name: string): Promise<string> {
  const names = await listRunNames(workdir);
  if (!names.includes(name))
    throw new InputError(
      `--run ${name}: no such run in ${workdirPaths(workdir).runsDir} (runs: ${names.join(', ') || 'none'})`,
    );
  return workdirPaths(workdir).run(name);
}
