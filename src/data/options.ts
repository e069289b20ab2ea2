// Command-line options every stage that reads a dataset shares.
import { Option } from 'commander';
import { DOMAINS } from './types.js';

/** `--domain`: which STL dataset of the workdir (`description` says what it picks in this command). */
export const domainOption = (description = 'STL domain') =>
  new Option('--domain <domain>', description).choices(DOMAINS).default('fashion');
