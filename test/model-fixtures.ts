// Tiny model specs of both architectures for the model tests, and a checkpoint state to save them with.
import { buildVocabulary } from '../src/data/stl/categories.js';
import type { CategoryMap } from '../src/model/categories.js';
import { CHECKPOINT_VERSION, type CheckpointState } from '../src/model/checkpoint.js';
import type { ModelSpec } from '../src/model/two-tower.js';

/** The reference v1's shape: MLP towers, no category, a raw learnable temperature. */
export const TINY_V1: ModelSpec = {
  arch: 'v1',
  hidden: 6,
  out: 4,
  blocks: 0,
  dropout: 0.2,
  categoryDim: 0,
  normalize: true,
  temperature: { init: 0.07, learnable: true, parametrisation: 'raw', min: 0.01, max: 1 },
  inputDim: 5,
  numCategories: 3,
};

/** The reference v2's shape: two residual blocks, a category embedding, a learnable log-temperature. */
export const TINY_V2: ModelSpec = {
  arch: 'v2',
  hidden: 8,
  out: 4,
  blocks: 2,
  dropout: 0.1,
  categoryDim: 3,
  normalize: true,
  temperature: { init: 0.07, learnable: true, parametrisation: 'log', min: 0.01, max: 1 },
  inputDim: 5,
  numCategories: 3,
};

/** A whole state.json for a checkpoint of `spec` whose categories are the leaves `categoryMap` names. */
export function checkpointStateFor(spec: ModelSpec, categoryMap: CategoryMap): CheckpointState {
  return {
    version: CHECKPOINT_VERSION,
    epoch: 1,
    step: 10,
    metric: 0.5,
    best: { epoch: 1, metric: 0.5 },
    epochsWithoutGain: 0,
    rng: { algorithm: 'test', seed: 1, nextEpoch: 1, nextStep: 10 },
    optimizer: { kind: 'adamw', t: 10 },
    config: { the: 'trainer config' },
    overrides: {},
    spec,
    categories: buildVocabulary(Object.keys(categoryMap.cat_to_idx).map((leaf) => `Apparel|${leaf}`)),
    categoryMap,
    embeddings: { model: 'test', dim: spec.inputDim, sceneView: 'full' },
    data: { fingerprint: 'f', trainPairs: 10, valPairs: 2 },
    backend: 'wasm',
    workers: 1,
    savedAt: new Date(0).toISOString(),
  };
}
