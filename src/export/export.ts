// `ctl export`: a run's checkpoint as files a user takes anywhere (see formats.ts): the reference's state_dict in
// safetensors (+ config.json) and as the reference's torch.save checkpoint dict (pt), both towers as ONNX, the
// product index and a model card. Each format is checked once written (safetensors and pt read back bit-exact;
// ONNX run in onnxruntime against the tfjs forward), or the export fails. The folder is written whole beside its
// destination and swapped in by renames: a killed export leaves the previous export or the new one.
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import { encodeNpy } from '../data/store/npy.js';
import { existingRunDir, runPaths } from '../data/workdir.js';
import type { EvalReport } from '../eval/evaluate.js';
import { readEvalReports } from '../eval/report-file.js';
import type { CheckpointName } from '../model/checkpoint.js';
import type { TowerBackendChoice } from '../model/backend.js';
import { loadTrainedModel, type TrainedModel } from '../model/load.js';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from '../model/safetensors.js';
import { decodeTorchCheckpoint } from '../model/torch/read-checkpoint.js';
import type { TorchTensor } from '../model/torch/tensor.js';
import { encodeTorchCheckpoint, type TorchValue } from '../model/torch/write-checkpoint.js';
import { TwoTower } from '../model/two-tower.js';
import { trainConfigSchema, type TrainConfig } from '../train/config.js';
import { restoreAside, writeDirAtomic, writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { InputError, RunError } from '../util/errors.js';
import { acquireLock, heldBy } from '../util/lock.js';
import { ctlCommand } from '../util/shell.js';
import { checkOnnxTowers } from './check-onnx.js';
import { FILES, type ExportFormat } from './formats.js';
import { modelCard } from './model-card.js';
import { ONNX_NAMES, towerOnnx } from '../model/onnx-tower.js';
import { torchOptimizerState } from './optimizer-state.js';
import { buildProductIndex, indexRows, type ProductIndex } from './product-index.js';
import { referenceClass, referenceStateDict, type ReferenceClass } from './reference-model.js';

export interface ExportOptions {
  workdir: string;
  run: string;
  checkpoint: CheckpointName;
  formats: ExportFormat[];
  /** Destination folder; default checkpoints/<run> under the current directory. */
  out?: string;
  /** pt: add Adam's state as `optimizer_state_dict` (the `last` checkpoint keeps it). */
  withOptimizer?: boolean;
  /** What runs the towers for the product index (the ONNX check runs the tfjs forward whatever this is). */
  backend?: TowerBackendChoice;
}

export interface ExportSummary {
  run: string;
  checkpoint: { which: CheckpointName; epoch: number };
  out: string;
  formats: ExportFormat[];
  files: { name: string; bytes: number }[];
  index: { rows: number; skipped: number };
  /** ONNX vs tfjs, max abs difference per tower, on the check batch. */
  onnxDifference?: { scene: number; product: number };
}

/** Rows of the ONNX check batch (taken from the product index's inputs). */
const CHECK_ROWS = 256;

const PRODUCER = 'ctl export';

export async function exportRun(o: ExportOptions): Promise<ExportSummary> {
  const source = await loadSource(o); // a refused export (no such run, flags that do not fit it) leaves no folder
  const out = resolve(o.out ?? join('checkpoints', o.run));
  await restoreAside(out);
  await checkReplaceable(out, o.run); // before the lock beside it: a mount point's parent may not take one
  // Two exports into one folder would each swap theirs in, and the first's files vanish though it said done.
  await mkdir(dirname(out), { recursive: true });
  const lock = await acquireLock(
    out,
    (holder, file) => `another ctl export into ${out} is running: ${heldBy(holder, file)}`,
  );
  try {
    return await exportLocked(o, out, source);
  } finally {
    await lock.release();
  }
}

/** What an export is made from: the run's checkpoint, its dataset, and the reference class its towers are. */
interface ExportSource {
  runDir: string;
  model: TrainedModel<TrainConfig>;
  dataset: Dataset;
  tower: TwoTower;
  reference: ReferenceClass | null;
}

/** Load the run's checkpoint and dataset; refuse formats and flags that do not fit it. */
async function loadSource(o: ExportOptions): Promise<ExportSource> {
  const runDir = await existingRunDir(o.workdir, o.run);
  const model = await loadTrainedModel(runDir, o.checkpoint, { backend: o.backend, config: trainConfigSchema });
  const dataset = await loadDataset(o.workdir, model.config.domain);
  const tower = new TwoTower(model.spec);
  const reference = referenceClass(tower);
  if (!reference && o.formats.some((f) => f !== 'onnx'))
    throw new InputError(
      `run '${o.run}' is a ${model.spec.arch} model with categoryDim ${model.spec.categoryDim}, which the reference's classes do not declare (CTLModel has no category embedding, CTLModelV2 always has one): export it with --format onnx`,
    );
  if (o.withOptimizer && !o.formats.includes('pt'))
    throw new InputError('--with-optimizer adds the optimizer state to the pt file: use it with --format pt or all');
  return { runDir, model, dataset, tower, reference };
}

/** exportRun's work, with the lock on `out` held. */
async function exportLocked(o: ExportOptions, out: string, source: ExportSource): Promise<ExportSummary> {
  const { runDir, model, dataset, tower, reference } = source;
  const index = await buildProductIndex(o.workdir, dataset, model);

  const indexSummary = { rows: index.products.length, skipped: index.skipped };
  try {
    const onnxDifference = await writeDirAtomic(out, async (tmp) => {
      const write = (name: string, data: string | Uint8Array | Uint8Array[]) => writeFileAtomic(join(tmp, name), data);
      if (o.formats.includes('safetensors')) await writeSafetensors(write, tmp, tower, model);
      const difference = o.formats.includes('onnx') ? await writeOnnx(write, tower, model, index, o.run) : undefined;
      // The reports of the checkpoint exported (not the other one's, nor an earlier best's).
      const evalReports = [...(await readEvalReports(runDir)).values()].filter(
        (r) => r.checkpoint?.which === o.checkpoint && r.checkpoint.epoch === model.state.epoch,
      );
      if (o.formats.includes('pt'))
        await writePt(write, tmp, tower, model, {
          metrics: checkpointMetrics(model, evalReports),
          optimizer: o.withOptimizer ? optimizerState(o, runDir, tower, model) : undefined,
        });
      await write(FILES.indexVectors, encodeNpy(index.vectors, [index.products.length, model.spec.out]));
      await write(FILES.indexRows, indexRows(dataset, index));
      await writeJsonAtomic(join(tmp, FILES.config), exportConfig(o, model, dataset, reference));
      await write(
        FILES.card,
        modelCard({
          run: o.run,
          which: o.checkpoint,
          model,
          dataset,
          reference,
          formats: o.formats,
          index: indexSummary,
          evalReports,
          onnxDifference: difference,
        }),
      );
      return difference;
    });
    const names = (await readdir(out)).sort();
    const files = await Promise.all(names.map(async (name) => ({ name, bytes: (await stat(join(out, name))).size })));
    return {
      run: o.run,
      checkpoint: { which: o.checkpoint, epoch: model.state.epoch },
      out,
      formats: o.formats,
      files,
      index: indexSummary,
      onnxDifference,
    };
  } finally {
    await model.dispose();
  }
}

type Write = (name: string, data: string | Uint8Array | Uint8Array[]) => Promise<void>;

/** model.safetensors: the reference's state_dict; read back, every tensor must be bit-identical. */
async function writeSafetensors(write: Write, dir: string, tower: TwoTower, model: TrainedModel): Promise<void> {
  const tensors = referenceStateDict(tower, model.params);
  const metadata = {
    format: 'pt',
    producer: PRODUCER,
    arch: model.spec.arch,
    epoch: String(model.state.epoch),
    embedding_model: model.state.embeddings.model,
    cat_to_idx: JSON.stringify(model.state.categoryMap.cat_to_idx),
    num_categories: String(model.state.categoryMap.num_categories),
  };
  await write(FILES.safetensors, encodeSafetensors({ tensors, metadata }));
  const path = join(dir, FILES.safetensors);
  let back: ReturnType<typeof decodeSafetensors>;
  try {
    back = decodeSafetensors(new Uint8Array(await readFile(path)), path);
  } catch (err) {
    throw new RunError(`export: the file just written does not read back: ${(err as Error).message}`); // ours, not the input
  }
  checkSameTensors(path, tensors, back.tensors);
}

/** model.pt: the reference's checkpoint dict as torch.save writes it; read back, every tensor must be identical. */
async function writePt(
  write: Write,
  dir: string,
  tower: TwoTower,
  model: TrainedModel,
  { metrics, optimizer }: { metrics: Map<string, number>; optimizer?: TorchValue },
): Promise<void> {
  const stateDict = new Map(Object.entries(referenceStateDict(tower, model.params)) as [string, TorchTensor][]);
  const { cat_to_idx, num_categories } = model.state.categoryMap;
  await write(
    FILES.pt,
    encodeTorchCheckpoint(
      {
        epoch: model.state.epoch,
        modelStateDict: stateDict,
        metrics,
        numCategories: num_categories,
        catToIdx: new Map(Object.entries(cat_to_idx)),
        optimizerStateDict: optimizer,
      },
      'model',
    ),
  );
  const path = join(dir, FILES.pt);
  const back = decodeTorchCheckpoint(new Uint8Array(await readFile(path)), path);
  if (back.meta.epoch !== model.state.epoch || back.meta.numCategories !== num_categories)
    throw new RunError(`pt export: ${path}: epoch or num_categories does not read back as written`);
  if (JSON.stringify(Object.fromEntries(back.meta.catToIdx ?? [])) !== JSON.stringify(cat_to_idx))
    throw new RunError(`pt export: ${path}: cat_to_idx does not read back as written`);
  if ((back.meta.optimizerStateDict === undefined) !== (optimizer === undefined))
    throw new RunError(`pt export: ${path}: optimizer_state_dict does not read back as written`);
  checkSameTensors(path, Object.fromEntries(stateDict), Object.fromEntries(back.stateDict));
}

/** Adam's state of the checkpoint as PyTorch's optimizer.state_dict(); only `last` keeps it. */
function optimizerState(
  o: ExportOptions,
  runDir: string,
  tower: TwoTower,
  model: TrainedModel<TrainConfig>,
): TorchValue {
  const { optimizer } = model; // read with the weights: a trainer may have saved again since
  if (!optimizer)
    throw new InputError(
      `--with-optimizer: the '${o.checkpoint}' checkpoint of this run keeps no optimizer state ` +
        (o.checkpoint !== 'last'
          ? "(only 'last' does): add --checkpoint last"
          : model.state.imported
            ? `(the file it was imported from had none; it has one once it trains: ` +
              `${ctlCommand(['train', '--config', runPaths(runDir).config, '--run', o.run, '--workdir', o.workdir, '--resume'])})`
            : '(its trainer.safetensors is missing)'),
    );
  const keys = Object.keys(referenceStateDict(tower, model.params));
  return torchOptimizerState(tower, optimizer, model.config.optimizer, keys);
}

/** The reference's `metrics` of a checkpoint: its selection metric, and its \`ctl eval\` results (`seed/recall@10`). */
function checkpointMetrics(model: TrainedModel<TrainConfig>, reports: EvalReport[]): Map<string, number> {
  // An imported checkpoint's own metrics go on (a round trip keeps them); its metric is only its file's.
  const imported = model.state.imported?.metrics ?? {};
  const metrics = new Map<string, number>(
    Object.entries(imported).filter((e): e is [string, number] => typeof e[1] === 'number'),
  );
  if (!model.state.imported) metrics.set(model.config.selection.metric, model.state.metric);
  for (const r of reports) {
    for (const [k, v] of Object.entries(r.metrics.recall)) metrics.set(`${r.protocol}/recall@${k}`, v);
    metrics.set(`${r.protocol}/mrr`, r.metrics.mrr);
  }
  return metrics;
}

/** Every tensor written is read back with the same names (in order), shapes and bytes. */
function checkSameTensors(path: string, written: Record<string, SafeTensor>, read: Record<string, SafeTensor>): void {
  const names = Object.keys(written);
  if (Object.keys(read).join() !== names.join())
    throw new RunError(`export: ${path} does not hold the ${names.length} tensors written`);
  for (const name of names) {
    const [a, b] = [written[name], read[name]];
    const bytes = (t: SafeTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (a.shape.join() !== b.shape.join() || !bytes(a).equals(bytes(b)))
      throw new RunError(`export: ${path}: ${name} does not read back as written`);
  }
}

/** Both towers as ONNX, run in onnxruntime on the first rows of the product index and compared with tfjs. */
async function writeOnnx(
  write: Write,
  tower: TwoTower,
  model: TrainedModel,
  index: ProductIndex,
  run: string,
): Promise<{ scene: number; product: number }> {
  const metadata = {
    run,
    arch: model.spec.arch,
    embedding_model: model.state.embeddings.model,
    scene_view: model.state.embeddings.sceneView,
    cat_to_idx: JSON.stringify(model.state.categoryMap.cat_to_idx),
  };
  const files = {
    scene: towerOnnx(tower, model.params, 'scene', metadata),
    product: towerOnnx(tower, model.params, 'product', metadata),
  };
  // Every category row once at least: the product check runs each row of the category table.
  const rows = Math.min(CHECK_ROWS, index.products.length);
  const x = index.inputs.subarray(0, rows * model.spec.inputDim);
  const categories = Int32Array.from({ length: rows }, (_, i) => i % Math.max(1, model.spec.numCategories));
  const difference = await checkOnnxTowers(model, files, x, categories, rows);
  await write(FILES.sceneOnnx, files.scene);
  await write(FILES.productOnnx, files.product);
  return difference;
}

function exportConfig(
  o: ExportOptions,
  model: TrainedModel<TrainConfig>,
  dataset: Dataset,
  reference: ReferenceClass | null,
) {
  const { state, spec } = model;
  return {
    producer: PRODUCER,
    run: o.run,
    checkpoint: { which: o.checkpoint, epoch: state.epoch, metric: state.metric, savedAt: state.savedAt },
    architecture: spec.arch,
    dims: {
      input: spec.inputDim,
      hidden: spec.hidden,
      out: spec.out,
      blocks: spec.arch === 'v2' ? spec.blocks : 0,
      category: spec.categoryDim,
    },
    spec,
    reference,
    num_categories: state.categoryMap.num_categories,
    cat_to_idx: state.categoryMap.cat_to_idx,
    categories: dataset.categories.map((c) => ({
      name: c.name,
      path: c.path,
      row: state.categoryMap.cat_to_idx[c.name],
    })),
    embeddings: state.embeddings,
    data: { source: dataset.source, domain: dataset.domain, split: model.config.split, ...state.data },
    onnx: o.formats.includes('onnx')
      ? {
          opset: 17,
          scene: { file: FILES.sceneOnnx, ...ONNX_NAMES.scene },
          product: {
            file: FILES.productOnnx,
            inputs: spec.categoryDim > 0 ? ONNX_NAMES.product.inputs : ONNX_NAMES.product.inputs.slice(0, 1),
            output: ONNX_NAMES.product.output,
          },
        }
      : undefined,
    formats: o.formats,
  };
}

/** Refuse to replace a folder that is not an earlier export (e.g. `--out ~`: its files would be lost), or a mount point. */
async function checkReplaceable(out: string, run: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR')
      throw new InputError(`--out ${out}: a file, not a folder: give a new or empty folder`);
    return;
  }
  // The export is written beside `out` and renamed into place, which a mount point (a Docker volume) cannot take.
  if ((await stat(out)).dev !== (await stat(dirname(out))).dev)
    throw new InputError(
      `--out ${out}: a mount point (another file system than its parent folder), which the export cannot replace, since it is written beside its folder and renamed into place: give a folder inside it, e.g. --out ${join(out, run)}`,
    );
  if (names.length === 0) return;
  let producer: unknown;
  try {
    producer = JSON.parse(await readFile(join(out, FILES.config), 'utf8')).producer;
  } catch {
    producer = undefined;
  }
  if (producer !== PRODUCER)
    throw new InputError(
      `--out ${out}: the folder exists and is not a \`ctl export\` folder (no ${FILES.config} written by it); the export replaces its folder whole: give a new or empty one`,
    );
}
