// Command-line options (and bounds of options) that several commands share.
import { Option } from 'commander';
import { DOMAINS } from './types.js';

/** `--domain`: which STL dataset of the workdir (`description` says what it picks in this command). */
export const domainOption = (description = 'STL domain') =>
  new Option('--domain <domain>', description).choices(DOMAINS).default('fashion');

/**
 * `--embeddings`: another embedding model's store than the config's, e.g. 'synthetic'; also from CTL_EMBEDDINGS, read
 * here once so every command that trains takes it alike.
 */
export const embeddingsOption = (description: string) =>
  new Option('--embeddings <model>', description).env('CTL_EMBEDDINGS');

/** The most scenes or products a generated dataset may have (`ctl data synth`, `ctl demo`; its arrays must fit in memory). */
export const MAX_GENERATED = 10_000_000;
