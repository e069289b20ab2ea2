// `ctl import --checkpoint`: a reference torch.save file (its checkpoint dict, or a bare state_dict) into a ctl
// run folder that eval, export and serve use like a trained run:
//   runs/<name>/config.json                 the reference config (configs/v1.json or v2.json) with the dims the
//                                           tensors have, the embedding store, and where the weights came from
//   runs/<name>/checkpoints/{best,last}/    the weights (checked key by key against the model the dims describe),
//                                           with the file's cat_to_idx (or, for a bare state_dict, the reference's
//                                           numbering of this dataset's categories); `last` also keeps the file's
//                                           Adam state (optimizer-state.ts), when its optimizer had stepped
// v1 or v2 and every dim (input, hidden, out, blocks, category) are read from the tensors; the input dim must be the
// embedding store's. The run folder is written whole (writeDirAtomic).
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { EmbeddingStore } from '../data/store/embeddings.js';
import type { Domain, SplitScheme } from '../data/types.js';
import { checkRunName, workdirPaths } from '../data/workdir.js';
import { categoryMapOf, categoryRows, checkCategoryMap, type CategoryMap } from '../model/categories.js';
import { CHECKPOINT_NAMES, saveCheckpoint } from '../model/checkpoint.js';
import { fromStateDict, torchShape } from '../model/state-dict.js';
import { readTorchCheckpoint } from '../model/torch/read-checkpoint.js';
import type { TorchTensor } from '../model/torch/tensor.js';
import { TwoTower, type ModelSpec } from '../model/two-tower.js';
import { loadTrainConfig, type ConfigOverride, type TrainConfig } from '../train/config.js';
import { shippedConfig } from '../train/shipped-configs.js';
import { loadTrainingData } from '../train/data.js';
import { lockRun } from '../train/run.js';
import { checkpointState } from '../train/checkpointing.js';
import { writeRunRecord } from '../train/run-record.js';
import { writeDirAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { firstNonFinite } from '../util/matrix.js';
import { isDirectory } from '../util/fs.js';
import { log } from '../util/log.js';
import { readOptimizerState, type TorchAdamGroup } from './optimizer-state.js';

export interface ImportCheckpointOptions {
  workdir: string;
  file: string;
  /** Run name; default: the file's name without extension. */
  run?: string;
  /** The embedding model whose store the towers read; default: the one store of the input dim. */
  model?: string;
  domain: Domain;
  /** The split the weights were trained on (default: seed, the reference's), so eval can flag what they saw. */
  split?: SplitScheme;
}

export interface ImportCheckpointSummary {
  run: string;
  dir: string;
  arch: 'v1' | 'v2';
  dims: { input: number; hidden: number; out: number; blocks: number; category: number };
  numCategories: number;
  /** True for a bare state_dict (no epoch, metrics or cat_to_idx in the file). */
  bare: boolean;
  epoch: number;
  embeddings: string;
  /** Adam's step count in the file's optimizer_state_dict, kept in the 'last' checkpoint; null without one. */
  optimizerSteps: number | null;
}

/** What the tensors say about the model. */
interface InferredModel {
  arch: 'v1' | 'v2';
  input: number;
  hidden: number;
  out: number;
  blocks: number;
  category: number;
  /** Rows of category_embedding.weight (v2). */
  categoryRows: number;
}

export async function importCheckpoint(o: ImportCheckpointOptions): Promise<ImportCheckpointSummary> {
  const run =
    o.run !== undefined
      ? checkRunName(o.run)
      : checkRunName(basename(o.file, extname(o.file)), 'give --run NAME', `${o.file}: its file name`);
  const dir = workdirPaths(o.workdir).run(run);
  const lock = await lockRun(dir); // a `ctl train` of the same name must not write into the imported run
  try {
    return await importLocked(o, run, dir);
  } finally {
    await lock.release();
  }
}

async function importLocked(o: ImportCheckpointOptions, run: string, dir: string): Promise<ImportCheckpointSummary> {
  const paths = workdirPaths(o.workdir);
  if (existsSync(dir)) throw new InputError(`run '${run}' already exists (${dir}): give another --run NAME`);

  const { stateDict, meta } = await readTorchCheckpoint(o.file);
  const tensors = Object.fromEntries(stateDict);
  const inferred = inferModel(tensors, o.file);
  const embeddingModel = o.model ?? (await findStore(o.workdir, inferred.input, o.file));
  const store = await EmbeddingStore.open(paths.embeddings(embeddingModel, 'products'));
  if (store.dim !== inferred.input)
    throw new InputError(
      `${o.file}: the towers take ${inferred.input}-d inputs (scene_encoder.0.weight [${inferred.hidden}, ${inferred.input}]), but the '${embeddingModel}' embeddings (${store.dir}) are ${store.dim}-d`,
    );

  const config = await referenceConfig(inferred, { run, domain: o.domain, split: o.split ?? 'seed', embeddingModel });
  const data = await loadTrainingData(o.workdir, config, o.file);
  const categoryMap = fileCategoryMap(meta, inferred, data.dataset.categories, o.file);
  categoryRows(categoryMap, data.dataset.categories, o.file);
  const spec: ModelSpec = { ...config.model, inputDim: inferred.input, numCategories: categoryMap.num_categories };
  const model = new TwoTower(spec);
  checkStateDict(model, tensors, o.file);
  const params = fromStateDict(model.layout, tensors, o.file);

  const epoch = meta.epoch ?? 0;
  // Numbers and strings of the file's metrics dict (anything else it may hold is not worth a JSON form).
  const metrics = Object.fromEntries(
    [...(meta.metrics ?? [])]
      .filter(([, v]) => ['number', 'string'].includes(typeof v))
      .map(([k, v]) => [String(k), v]),
  );
  const selected = metrics[config.selection.metric];
  const metric = typeof selected === 'number' && Number.isFinite(selected) ? selected : 0;
  const record = { config, overrides: {}, data, spec, categoryMap, backend: 'pytorch', workers: 1 };
  const imported = { file: o.file, bare: meta.bare, metrics };
  const read =
    meta.optimizerStateDict === undefined
      ? { passedOver: 'the file has none' }
      : readOptimizerState(meta.optimizerStateDict, [...stateDict.keys()], model.layout, o.file);
  const optimizer = 'moments' in read ? read : null;
  if (optimizer) noteOtherHyperParameters(optimizer.group, config, o.file);
  // Adam's own step count goes with its moments (bias correction); the run's schedule starts at step 0.
  const state = checkpointState(record, {
    epoch,
    step: 0,
    metric,
    best: { epoch, metric },
    epochsWithoutGain: 0,
    imported,
    ...(optimizer ? { adamSteps: optimizer.moments.t } : {}),
  });

  // The whole run folder at once: a killed import leaves no half run.
  await writeDirAtomic(dir, async (tmp) => {
    await writeRunRecord(tmp, {
      config,
      overrides: {},
      imported: state.imported,
      embeddings: state.embeddings,
      data: state.data,
      createdAt: state.savedAt,
    });
    for (const which of CHECKPOINT_NAMES)
      await saveCheckpoint(tmp, which, model.layout, {
        state,
        params,
        ...(which === 'last' && optimizer ? { optimizer: optimizer.moments } : {}),
      });
  });
  log(
    `import: ${o.file} (${meta.bare ? 'bare state_dict' : `epoch ${epoch}`}) → run '${run}': ${inferred.arch}, ` +
      `${inferred.input}→${inferred.hidden}→${inferred.out}` +
      (inferred.arch === 'v2' ? `, ${inferred.blocks} blocks, ${inferred.category}-d category embedding` : '') +
      `, '${data.embeddingModel}' embeddings` +
      (optimizer
        ? `, Adam's state at step ${optimizer.moments.t}`
        : `; no optimizer state taken (${'passedOver' in read ? read.passedOver : ''}): training starts Adam afresh`),
  );
  return {
    run,
    dir,
    arch: inferred.arch,
    dims: {
      input: inferred.input,
      hidden: inferred.hidden,
      out: inferred.out,
      blocks: inferred.blocks,
      category: inferred.category,
    },
    numCategories: categoryMap.num_categories,
    bare: meta.bare,
    epoch,
    embeddings: data.embeddingModel,
    optimizerSteps: optimizer?.moments.t ?? null,
  };
}

/** Training an imported run goes on with the config's optimizer settings: say where the file's were others. */
function noteOtherHyperParameters(group: TorchAdamGroup, config: TrainConfig, file: string): void {
  const ours = config.optimizer;
  const differ = [
    group.lr !== ours.lr && `lr ${group.lr} (ctl: ${ours.lr})`,
    (group.betas[0] !== ours.betas[0] || group.betas[1] !== ours.betas[1]) &&
      `betas ${group.betas.join(', ')} (ctl: ${ours.betas.join(', ')})`,
    group.eps !== ours.eps && `eps ${group.eps} (ctl: ${ours.eps})`,
    group.weight_decay !== ours.weightDecay && `weight_decay ${group.weight_decay} (ctl: ${ours.weightDecay})`,
  ].filter(Boolean);
  if (differ.length > 0)
    log(
      `import: ${file}'s optimizer ran with ${differ.join(', ')}; a resumed run trains with its config's ` +
        `(runs/<name>/config.json)`,
    );
}

/** v1 or v2 from the keys, and the dims from the shapes of the tensors that carry them. */
function inferModel(tensors: Record<string, TorchTensor>, file: string): InferredModel {
  const matrix = (key: string, why: string): [number, number] => {
    const t = tensors[key];
    if (!t) throw new InputError(`${file}: ${key}: missing (${why})`);
    if (t.shape.length !== 2)
      throw new InputError(`${file}: ${key}: shape [${t.shape}] found, a matrix expected (${why})`);
    return [t.shape[0], t.shape[1]];
  };
  const v2 = ['log_temperature', 'category_embedding.weight', 'scene_encoder.1.weight'].some((k) => k in tensors);
  const v1 = ['temperature', 'scene_encoder.3.weight'].some((k) => k in tensors);
  if (!v1 && !v2)
    throw new InputError(
      `${file}: neither the reference's v1 keys (temperature, scene_encoder.3.weight) nor its v2 keys (log_temperature, category_embedding.weight, scene_encoder.1.weight); keys found: ${Object.keys(tensors).slice(0, 8).join(', ')}`,
    );
  const [hidden, input] = matrix('scene_encoder.0.weight', "the scene tower's first Linear");
  if (!v2) {
    const [out] = matrix('scene_encoder.3.weight', "v1: the scene tower's output Linear");
    return { arch: 'v1', input, hidden, out, blocks: 0, category: 0, categoryRows: 0 };
  }
  let blocks = 0;
  while (`scene_encoder.${4 + blocks}.net.0.weight` in tensors) blocks++;
  const [out] = matrix(`scene_encoder.${4 + blocks}.weight`, `v2: the output Linear after ${blocks} residual blocks`);
  const [categoryRows, category] = matrix('category_embedding.weight', 'v2: the category embedding');
  return { arch: 'v2', input, hidden, out, blocks, category, categoryRows };
}

/** The reference's config of the architecture (configs/<arch>.json), with the file's dims and this workdir's store. */
async function referenceConfig(
  m: InferredModel,
  { run, domain, split, embeddingModel }: { run: string; domain: Domain; split: SplitScheme; embeddingModel: string },
): Promise<TrainConfig> {
  const file = shippedConfig(m.arch);
  const set = (path: string, value: unknown): ConfigOverride => ({
    flag: `(${path} from the checkpoint)`,
    path,
    value,
  });
  return loadTrainConfig(file, [
    set('name', run),
    set('domain', domain),
    set('split', split),
    set('embeddings', { model: embeddingModel, dim: m.input }),
    set('model.hidden', m.hidden),
    set('model.out', m.out),
    set('model.blocks', m.blocks),
    set('model.categoryDim', m.category),
  ]);
}

/** The file's cat_to_idx (checked against the category table), or for a file without one the reference's own
 * numbering of this dataset's categories (which a v1 model, without a category embedding, never reads). */
function fileCategoryMap(
  meta: { bare: boolean; catToIdx?: Map<string, number>; numCategories?: number },
  m: InferredModel,
  categories: Parameters<typeof categoryMapOf>[0],
  file: string,
): CategoryMap {
  let map: CategoryMap;
  if (meta.catToIdx) {
    map = checkCategoryMap(
      {
        cat_to_idx: Object.fromEntries(meta.catToIdx),
        num_categories: meta.numCategories ?? Math.max(-1, ...meta.catToIdx.values()) + 1,
      },
      `${file}: cat_to_idx`,
    );
  } else {
    map = categoryMapOf(categories);
    if (m.arch === 'v2')
      log(
        `import: ${file} has no cat_to_idx (${meta.bare ? 'a bare state_dict' : 'its dict holds none'}): assuming the reference's numbering of this dataset's categories`,
      );
  }
  if (m.arch === 'v2' && map.num_categories !== m.categoryRows)
    throw new InputError(
      `${file}: category_embedding.weight has ${m.categoryRows} rows but ${meta.catToIdx ? 'the file names' : 'the dataset has'} ${map.num_categories} categories`,
    );
  return map;
}

/** Every key of the model, with its PyTorch shape, and no other. */
function checkStateDict(model: TwoTower, tensors: Record<string, TorchTensor>, file: string): void {
  const expected = new Set<string>();
  for (const e of model.layout.entries) {
    expected.add(e.name);
    const shape = torchShape(e);
    const t = tensors[e.name];
    if (!t) throw new InputError(`${file}: model_state_dict: ${e.name}: missing (expected shape [${shape}])`);
    if (t.shape.join() !== shape.join())
      throw new InputError(`${file}: model_state_dict: ${e.name}: shape [${t.shape}] found, [${shape}] expected`);
    const bad = firstNonFinite(t.data);
    if (bad >= 0)
      throw new InputError(
        `${file}: model_state_dict: ${e.name}: value [${unravel(bad, shape)}] is ${t.data[bad]}, expected finite numbers`,
      );
  }
  const extra = Object.keys(tensors).filter((k) => !expected.has(k));
  if (extra.length > 0)
    throw new InputError(
      `${file}: model_state_dict: unexpected key${extra.length > 1 ? 's' : ''} ${extra.join(', ')} (not in the reference's ${model.spec.arch} model with these dims)`,
    );
}

/** The index of element `flat` of a row-major tensor of `shape`, one number per axis. */
function unravel(flat: number, shape: number[]): number[] {
  const index = [];
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    index.unshift(flat % shape[axis]);
    flat = Math.floor(flat / shape[axis]);
  }
  return index;
}

/** The embedding model of the one store whose vectors have `dim` values, when --model is not given. */
async function findStore(workdir: string, dim: number, file: string): Promise<string> {
  const root = join(workdir, 'embeddings');
  const candidates: { model: string; dim: number }[] = [];
  for (const slug of await readdir(root).catch(() => [] as string[])) {
    if (!(await isDirectory(join(root, slug)))) continue; // a stray file
    const meta = await EmbeddingStore.readMeta(join(root, slug, 'products'));
    if (meta) candidates.push(meta); // else not a store with product embeddings
  }
  const fitting = candidates.filter((c) => c.dim === dim);
  if (fitting.length === 1) return fitting[0].model;
  const found = candidates.map((c) => `'${c.model}' (${c.dim}-d)`).join(', ') || 'none';
  throw new InputError(
    `${file}: the towers take ${dim}-d embeddings; ${fitting.length > 1 ? 'several stores fit' : 'no store fits'} (stores in ${root}: ${found}): give --model NAME`,
  );
}
