// `ctl eval`'s work: encode a split's scenes and the catalog with a trained run's towers (or take the raw image
// embeddings, the zero-shot baseline), run the protocols, and write each report to runs/<name>/eval/.
//
// Which pairs a protocol evaluates:
//   seed              the reference's split (dataset.splits.seed), its val part; it has no test part.
//   catalog, category the scene-disjoint split (dataset.splits.scene), the part asked (val or test).
// A run trained on the seed split has seen most scenes of the scene split's val and test parts: the report says
// how many evaluated pairs have a scene the run trained on (`trainSceneOverlap`), and the table flags it.
import { join } from 'node:path';
import * as z from 'zod';
import { datasetDigest, OTHER_DATA, trainedOnOtherData, type Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import { loadPairInputs, loadProductInputs, type PairInputs, type ProductInputs } from '../data/store/pair-inputs.js';
import { DOMAINS, SPLIT_SCHEMES, type SplitScheme } from '../data/types.js';
import type { CheckpointName } from '../model/checkpoint.js';
import { loadTrainedModel, type TrainedModel } from '../model/load.js';
import type { TowerBackendChoice } from '../model/backend.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { oneOf } from '../util/schema.js';
import { log } from '../util/log.js';
import { gatherRows, l2NormalizeRows } from '../util/matrix.js';
import { Progress } from '../util/progress.js';
import { evalReportFile, existingRunDir, runPaths, workdirPaths, type SceneView } from '../data/workdir.js';
import type { EngineName } from './engines.js';
import { evaluateProtocol, type EvalSplit, type Metrics, type Protocol } from './protocols.js';

/** What `ctl eval` writes per protocol and prints with --json. */
export interface EvalReport {
  /** The run, or null for the zero-shot baseline. */
  run: string | null;
  model: 'trained' | 'zero-shot';
  checkpoint?: { which: CheckpointName; epoch: number; metric: number };
  /** What ran the towers (TrainedModel.backend: 'ort-cpu', or a TensorFlow.js backend's name): their float sums
   * differ, and so may the last digits of two reports. Absent for zero-shot (no towers) and from an older ctl. */
  backend?: string;
  protocol: Protocol;
  split: { scheme: SplitScheme; part: EvalSplit };
  /** Where the numbers come from: real STL or synthetic data, and which image embeddings. */
  data: { source: Dataset['source']; domain: Dataset['domain']; embeddings: string; sceneView: SceneView };
  pairs: { asked: number; evaluated: number; missingEmbeddings: number; missingProducts: number };
  /** Evaluated pairs whose scene the run trained on (null for zero-shot, and for a run trained on other data). */
  trainSceneOverlap: number | null;
  /** The run was trained on another dataset than the workdir's (its scenes and splits here are not its own). */
  trainedOnOtherData?: true;
  metrics: Metrics;
  seconds: number;
  createdAt: string;
}

/** One evaluation: a protocol on a part of its split. */
export interface EvalRequest {
  protocol: Protocol;
  split: EvalSplit;
}

/** The part a protocol evaluates when none is asked: test, but val for `seed` (it has no test part). */
export function defaultSplit(protocol: Protocol): EvalSplit {
  return protocol === 'seed' ? 'val' : 'test';
}

/** The pairs a protocol evaluates (see the file comment). */
function protocolPairs(
  dataset: Dataset,
  protocol: Protocol,
  split: EvalSplit,
): { scheme: SplitScheme; pairs: number[] } {
  if (protocol === 'seed' && split === 'test') {
    throw new InputError(
      "--split test: the seed protocol has no test part (the reference's split is 90% train / 10% val); use --split val, or --protocol catalog|category",
    );
  }
  const scheme: SplitScheme = protocol === 'seed' ? 'seed' : 'scene';
  const pairs = dataset.splits[scheme]?.parts[split] ?? [];
  if (pairs.length === 0)
    throw new InputError(
      `the dataset's ${scheme} split has no ${split} pairs: ` +
        (dataset.source === 'synthetic'
          ? 'too few scenes for this part: make more with `ctl data synth --scenes N` (or another --seed)'
          : 're-run `ctl data fetch` or `ctl data synth`'),
    );
  return { scheme, pairs };
}

const PROGRESS_FROM = 2000;

/** Of the run's config, evaluation needs only which data it trained on. */
const trainedOn = z.looseObject({ domain: oneOf(DOMAINS), split: oneOf(SPLIT_SCHEMES) });

/** Evaluate a trained run's checkpoint under each protocol; reports are written to runs/<name>/eval/. */
export async function evaluateRun(
  workdir: string,
  run: string,
  checkpoint: CheckpointName,
  requests: EvalRequest[],
  engine?: EngineName,
  backend?: TowerBackendChoice,
): Promise<EvalReport[]> {
  const dir = await existingRunDir(workdir, run);
  const model = await loadTrainedModel(dir, checkpoint, { backend, config: trainedOn });
  try {
    const dataset = await loadDataset(workdir, model.config.domain);
    const otherData = trainedOnOtherData(model.state.data.dataset, datasetDigest(dataset));
    if (otherData)
      log(`note: run '${run}' was ${OTHER_DATA}: its splits and metrics here are not those of its training data`);
    // Which scenes it trained on is known of its own data only.
    const trainScenes = otherData
      ? null
      : new Set((dataset.splits[model.config.split]?.parts.train ?? []).map((p) => dataset.pairs[p].scene));
    const vectors = new EvalVectors(
      workdir,
      dataset,
      model.state.embeddings.model,
      model.state.embeddings.sceneView,
      model,
    );
    const reports: EvalReport[] = [];
    for (const request of requests) {
      const report = await evaluateWith(vectors, request, engine, trainScenes);
      report.run = run;
      report.checkpoint = { which: checkpoint, epoch: model.state.epoch, metric: model.state.metric };
      report.backend = model.backend;
      if (otherData) report.trainedOnOtherData = true;
      const file = evalReportFile(request.protocol, request.split, checkpoint);
      await writeJsonAtomic(join(runPaths(dir).evalDir, file), report);
      reports.push(report);
    }
    return reports;
  } finally {
    await model.dispose();
  }
}

/**
 * The zero-shot baseline: raw image embeddings, cosine, no model. Reports are written to
 * <workdir>/eval/zero-shot/<embeddings>/<scene view>/.
 */
export async function evaluateZeroShot(
  workdir: string,
  dataset: Dataset,
  embeddings: string,
  sceneView: SceneView,
  requests: EvalRequest[],
  engine?: EngineName,
): Promise<EvalReport[]> {
  const reports: EvalReport[] = [];
  const dir = workdirPaths(workdir).zeroShotReports(embeddings, sceneView);
  const vectors = new EvalVectors(workdir, dataset, embeddings, sceneView, null);
  for (const request of requests) {
    const report = await evaluateWith(vectors, request, engine, null);
    await writeJsonAtomic(join(dir, evalReportFile(request.protocol, request.split)), report);
    reports.push(report);
  }
  return reports;
}

async function evaluateWith(
  vectors: EvalVectors,
  { protocol, split }: EvalRequest,
  engine: EngineName | undefined,
  trainScenes: Set<string> | null,
): Promise<EvalReport> {
  const started = performance.now();
  const { dataset, sceneView, model } = vectors;
  const { scheme, pairs } = protocolPairs(dataset, protocol, split);
  const inputs = await vectors.of(scheme, split, pairs);
  const { sceneVectors, productVectors, dim } = inputs;

  // Progress only where ranking takes a while (many pairs).
  const progress =
    inputs.keptPairs.length >= PROGRESS_FROM
      ? new Progress(`${model ? 'eval' : 'zero-shot'} ${protocol}`, inputs.keptPairs.length, { unit: 'rows' })
      : null;
  let last = 0;
  const metrics = await evaluateProtocol(
    protocol,
    { dataset, pairs: inputs.keptPairs, sceneVectors, productVectors, dim, missingProducts: inputs.missingProducts },
    {
      engine,
      onProgress: (done, total) => {
        progress?.setTotal(total);
        progress?.tick(done - last);
        last = done;
      },
    },
  );
  progress?.finish();
  const overlap = trainScenes ? inputs.keptPairs.filter((p) => trainScenes.has(dataset.pairs[p].scene)).length : null;
  return {
    run: null,
    model: model ? 'trained' : 'zero-shot',
    protocol,
    split: { scheme, part: split },
    data: { source: dataset.source, domain: dataset.domain, embeddings: inputs.model, sceneView },
    pairs: {
      asked: pairs.length,
      evaluated: inputs.keptPairs.length,
      missingEmbeddings: inputs.missingPairs,
      missingProducts: inputs.missingProducts.length,
    },
    trainSceneOverlap: overlap,
    metrics,
    seconds: (performance.now() - started) / 1000,
    createdAt: new Date().toISOString(),
  };
}

/** A part's pairs as a protocol ranks them: their scene vectors and the catalog's product vectors. */
interface PartVectors extends Omit<PairInputs, 'scenes' | 'sceneRow' | 'products' | 'dim'> {
  /** Row i = the query vector of keptPairs[i] (L2-normalised). */
  sceneVectors: Float32Array;
  /** Row j = the vector of dataset.products[j] (L2-normalised). */
  productVectors: Float32Array;
  dim: number;
}

/**
 * The vectors one evaluation call ranks, each loaded and encoded once: every protocol ranks the same catalog, and
 * catalog and category evaluate the same part of the scene split. Encoding (the product tower over the whole
 * catalog above all) is most of an evaluation's time, so `--protocol all` would otherwise triple it.
 */
class EvalVectors {
  private readonly parts = new Map<string, Promise<PartVectors>>();
  /** The catalog's input vectors, read once for every part (38k × 768 floats at full size). */
  private productInputs?: Promise<ProductInputs>;
  private catalog?: Promise<Float32Array>;

  constructor(
    readonly workdir: string,
    readonly dataset: Dataset,
    readonly embeddings: string,
    readonly sceneView: SceneView,
    /** The run's towers; null for the zero-shot baseline (raw embeddings, normalised). */
    readonly model: TrainedModel | null,
  ) {}

  /** The vectors of a part's pairs (`pairs`: that part of the split, as asked). */
  of(scheme: SplitScheme, part: EvalSplit, pairs: number[]): Promise<PartVectors> {
    const key = `${scheme}/${part}`;
    let vectors = this.parts.get(key);
    if (!vectors) {
      vectors = this.load(scheme, part, pairs);
      this.parts.set(key, vectors);
    }
    return vectors;
  }

  private async load(scheme: SplitScheme, part: EvalSplit, pairs: number[]): Promise<PartVectors> {
    this.productInputs ??= loadProductInputs(this.workdir, this.dataset, this.embeddings);
    const { scenes, sceneRow, products, dim, ...inputs } = await loadPairInputs(
      this.workdir,
      this.dataset,
      this.embeddings,
      this.sceneView,
      pairs,
      await this.productInputs,
    );
    if (inputs.keptPairs.length === 0) {
      throw new InputError(
        `none of the ${pairs.length} ${scheme}/${part} pairs has '${this.embeddings}' embeddings: run \`ctl embed\` (or \`ctl data synth\`)`,
      );
    }
    this.catalog ??= this.model
      ? this.encodeProducts(this.model, products)
      : Promise.resolve(l2NormalizeRows(products, dim));
    const productVectors = await this.catalog;
    // Each distinct scene input once (the full view shares one between a scene's pairs), then one row per pair.
    const distinctScenes = this.model
      ? await this.model.encodeScenes(scenes, scenes.length / dim)
      : l2NormalizeRows(scenes, dim);
    const outDim = this.model ? this.model.spec.out : dim;
    return { ...inputs, sceneVectors: gatherRows(distinctScenes, sceneRow, outDim), productVectors, dim: outDim };
  }

  private encodeProducts(model: TrainedModel, products: Float32Array): Promise<Float32Array> {
    const rows = model.categoryRows(this.dataset.categories);
    const categories = Int32Array.from(this.dataset.products, (p) => rows[p.category]);
    return model.encodeProducts(products, categories, this.dataset.products.length);
  }
}
