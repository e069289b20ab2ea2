// Tiny model specs of both architectures for the model tests.
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
