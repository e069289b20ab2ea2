// runs/<name>/config.json, the run record: how a run began. `ctl train` writes it as a new run starts, `ctl import
// --checkpoint` with an imported run's checkpoints; `ctl train --config runs/<name>/config.json` trains from it, and
// the dashboard shows its config while the run has no checkpoint to read.
import { runPaths, type SceneView } from '../data/workdir.js';
import type { CheckpointState } from '../model/checkpoint.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { isObject } from '../util/json.js';
import type { TrainConfig } from './config.js';
import type { TrainingData } from './data.js';

/** A run's config.json; `Config` is unknown as read, until the config schema has checked it. */
export interface RunRecord<Config = TrainConfig> {
  /** The resolved config the run starts with. */
  config: Config;
  /** What the command line changed in the config file (`--set`, `--embeddings`). */
  overrides: Record<string, unknown>;
  /** A trained run's: the config file given to `ctl train`. */
  configFile?: string;
  /** An imported run's: the file its weights came from (as its checkpoints record it). */
  imported?: CheckpointState['imported'];
  /** The embedding store; an imported run's names its scene view too. */
  embeddings: { model: string; dim: number; sceneView?: SceneView };
  /** The data trained on: a trained run's counts what lacks embeddings, an imported run's gives the dataset's digest. */
  data: {
    fingerprint: string;
    trainPairs: number;
    valPairs: number;
    missing?: TrainingData['missing'];
    dataset?: string;
  };
  /** ISO time the run started (an imported run's: its checkpoints' savedAt). */
  createdAt: string;
}

/** Write the record into a run's folder (or the temporary folder a run is written whole in). */
export async function writeRunRecord(runDir: string, record: RunRecord): Promise<void> {
  await writeJsonAtomic(runPaths(runDir).config, record);
}

/** Whether a config file's JSON is a run's config.json: a `config` object, and `createdAt`. */
export function isRunRecord(document: unknown): document is Pick<RunRecord<Record<string, unknown>>, 'config'> {
  return isObject(document) && isObject(document.config) && 'createdAt' in document;
}
