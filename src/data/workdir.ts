// The workdir layout, in one place: every stage reads the previous one's output from here.
import { join } from 'node:path';
import type { Domain } from './types.js';

/** A model id as a folder name: "Marqo/marqo-fashionSigLIP" → "Marqo--marqo-fashionSigLIP". */
export function modelSlug(modelId: string): string {
  return modelId.replace(/[\\/]+/g, '--').replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Which embedding matrix: product images, whole scenes, or scenes with one product's box hidden. */
export type EmbeddingView = 'products' | 'scenes-full' | 'scenes-hide-product';

export function workdirPaths(workdir: string) {
  return {
    root: workdir,
    rawPairs: (domain: Domain) => join(workdir, 'stl', `${domain}.json`),
    rawCategories: (domain: Domain) => join(workdir, 'stl', `${domain}-cat.json`),
    dataset: (domain: Domain) => join(workdir, 'dataset', `${domain}.json`),
    imagesDir: join(workdir, 'images'),
    images: (kind: 'scenes' | 'products') => join(workdir, 'images', kind),
    imageFile: (kind: 'scenes' | 'products', sig: string) => join(workdir, 'images', kind, `${sig}.jpg`),
    imageManifest: join(workdir, 'images', 'manifest.jsonl'),
    modelsDir: join(workdir, 'models'),
    embeddingsDir: join(workdir, 'embeddings'),
    embeddings: (modelId: string, view: EmbeddingView) => join(workdir, 'embeddings', modelSlug(modelId), view),
    runsDir: join(workdir, 'runs'),
    run: (name: string) => join(workdir, 'runs', name),
  };
}

export type WorkdirPaths = ReturnType<typeof workdirPaths>;
