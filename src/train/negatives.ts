// Negatives for the triplet loss: one strategy per file in negatives/, registered here by the name a config's
// `negatives.strategy` gives. Every strategy draws products of the positive's category that are not one of the
// scene's true products (or none, -1, when the category has no such product); none ever returns a positive.
//   none                  no triplet term
//   same-category-random  the reference v2: a random product of the positive's category
//   in-batch-hard         the batch product of that category the scene currently scores highest
//   mined                 ours: every K steps, rank each training scene's same-category non-positives with the
//                         current towers and keep a few from a rank window (semi-hard: below the top, which may
//                         be unlabelled positives, above the easy tail); each step draws one of them
// A new strategy is a file in negatives/ with its factory, and one line in STRATEGIES.
import type { NegativesConfig, TrainConfig } from './config.js';
import type { StepPlan, TrainEngine } from './engine.js';
import type { NegativeIndex } from './negatives/negative-index.js';
import { inBatchHardSampler } from './negatives/in-batch-hard.js';
import { minedSampler } from './negatives/mined.js';
import { noNegatives } from './negatives/none.js';
import { sameCategoryRandomSampler } from './negatives/same-category-random.js';

/** What a strategy draws from. */
export interface SamplerContext {
  index: NegativeIndex;
  config: NegativesConfig;
  /** The run's seed: every draw is keyed by (seed, purpose, step). */
  seed: number;
}

/** A per-row table of products a strategy keeps across steps (the mined pool), with the step it was made at:
 * what a checkpoint saves so that a resumed run samples exactly as an uninterrupted one. */
export interface SamplerState {
  step: number;
  /** [rows, width] dataset product indices, -1 = empty. */
  table: Int32Array;
  width: number;
}

export interface NegativeSampler {
  /** The negatives of one step's batch of training rows. */
  sample(rows: Int32Array, step: number): Pick<StepPlan, 'negatives' | 'hardCandidates'>;
  /** Called before every step: update what sampling depends on, with the current towers (mining). */
  refresh?(step: number, towers: Pick<TrainEngine, 'encode'>): Promise<void>;
  /** What to checkpoint; null while there is nothing. */
  state?(): SamplerState | null;
}

/** Make a run's sampler; `saved` is what its last checkpoint kept (see NegativeSampler.state). */
export type StrategyFactory = (context: SamplerContext, saved: SamplerState | null) => NegativeSampler;

const STRATEGIES = {
  none: noNegatives,
  'same-category-random': sameCategoryRandomSampler,
  'in-batch-hard': inBatchHardSampler,
  mined: minedSampler,
} satisfies Record<string, StrategyFactory>;

export type NegativeStrategy = keyof typeof STRATEGIES;
export const NEGATIVE_STRATEGIES = Object.keys(STRATEGIES) as NegativeStrategy[];

/** The strategy a config draws with: none without a triplet term, whatever its `negatives.strategy`. */
export function drawnNegatives(config: TrainConfig): NegativeStrategy {
  return config.loss.triplet > 0 ? config.negatives.strategy : 'none';
}

export function createNegativeSampler(
  strategy: NegativeStrategy,
  context: SamplerContext,
  saved: SamplerState | null = null,
): NegativeSampler {
  return STRATEGIES[strategy](context, saved);
}
