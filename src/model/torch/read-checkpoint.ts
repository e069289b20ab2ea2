// Reading torch.save files: a zip holding `<archive>/data.pkl` (the pickled object) and `<archive>/data/<key>`
// (one raw little-endian storage per key, referenced from the pickle by persistent ids). Only the globals torch
// writes for tensors and state_dicts are allowed (and numpy's, for metrics computed with numpy), so loading a
// checkpoint never runs code from it.
import { InputError } from '../../util/errors.js';
import { readInputFile } from '../../util/input-file.js';
import { pythonTypeOf, PickleGlobalRef, unpickle, Unread, type PickleGlobal } from './pickle.js';
import { contiguousStrides, FLOAT32_STORAGE, isTorchTensor, STORAGE_TYPES, type TorchTensor } from './tensor.js';
import { isZip, readZip } from './zip.js';
import { numpyGlobals } from './numpy-pickle.js';
import { elementCount, float32sOf } from '../../util/matrix.js';

/** What a reference checkpoint holds besides the model's weights (all optional: a bare state_dict has none). */
export interface TorchCheckpointMeta {
  /** True when the file is a bare state_dict rather than the reference's dict. */
  bare: boolean;
  epoch?: number;
  metrics?: Map<unknown, unknown>;
  numCategories?: number;
  /** Category leaf name → row of `category_embedding.weight`. */
  catToIdx?: Map<string, number>;
  /** As unpickled (Maps, arrays and tensors), when the file has one. */
  optimizerStateDict?: unknown;
}

export interface TorchCheckpoint {
  stateDict: Map<string, TorchTensor>;
  meta: TorchCheckpointMeta;
}

/** A storage as the pickle's persistent id names it, before a tensor views it. */
interface Storage {
  key: string;
  data: Float32Array;
}

/** A storage of another type than float32: its tensors are kept unread (a checkpoint's int64 step counts). */
interface OtherStorage {
  key: string;
  type: string;
}

function torchGlobals(): Map<string, PickleGlobal> {
  const globals = new Map<string, PickleGlobal>([
    ...numpyGlobals(),
    ['collections.OrderedDict', { call: (args) => new Map(args.length > 0 ? (args[0] as [unknown, unknown][]) : []) }],
    ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
    ['torch._utils._rebuild_parameter', { call: (args) => args[0] }],
    ['torch._utils._rebuild_parameter_with_state', { call: (args) => args[0] }],
  ]);
  // Storage types appear as values inside persistent ids.
  for (const type of STORAGE_TYPES) globals.set(`torch.${type}`, {});
  return globals;
}

/** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
function rebuildTensor(args: unknown[]): TorchTensor | Unread {
  const [storage, offset, size, stride] = args;
  if (!isStorage(storage) && !isOtherStorage(storage))
    throw new InputError(`_rebuild_tensor_v2: expected a storage, found a ${pythonTypeOf(storage)}`);
  if (!isIntArray(size) || !isIntArray(stride) || size.length !== stride.length || typeof offset !== 'number')
    throw new InputError(`_rebuild_tensor_v2: bad size/stride for storage ${storage.key}`);
  if (isOtherStorage(storage)) return new Unread(`${storage.type} tensor [${size}]`);
  const count = elementCount(size);
  const data = new Float32Array(count);
  const dense = stride.every((s, i) => s === contiguousStrides(size)[i]);
  if (dense) {
    if (offset + count > storage.data.length)
      throw new InputError(`storage ${storage.key}: tensor of ${count} values at ${offset} overruns the storage`);
    data.set(storage.data.subarray(offset, offset + count));
  } else {
    // A strided view (e.g. a saved transpose): gather it into row-major order.
    const index = new Array<number>(size.length).fill(0);
    for (let i = 0; i < count; i++) {
      let at = offset;
      for (let d = 0; d < size.length; d++) at += index[d] * stride[d];
      if (at >= storage.data.length) throw new InputError(`storage ${storage.key}: strided tensor overruns it`);
      data[i] = storage.data[at];
      for (let d = size.length - 1; d >= 0 && ++index[d] === size[d]; d--) index[d] = 0;
    }
  }
  return { dtype: 'F32', shape: [...size], data };
}

function isStorage(value: unknown): value is Storage {
  return typeof value === 'object' && value !== null && (value as Storage).data instanceof Float32Array;
}

function isOtherStorage(value: unknown): value is OtherStorage {
  return typeof value === 'object' && value !== null && typeof (value as OtherStorage).type === 'string';
}

function isIntArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => Number.isInteger(v) && v >= 0);
}

/** The object a torch.save zip holds, with float32 tensors in place of torch's. `source` names the file. */
export function decodeTorchSave(bytes: Uint8Array, source: string): unknown {
  if (!isZip(bytes)) {
    if (bytes[0] === 0x80)
      throw new InputError(
        `${source}: a legacy (pre-zip, PyTorch < 1.6) torch.save file: re-save it with torch.save(..., _use_new_zipfile_serialization=True)`,
      );
    throw new InputError(`${source}: not a torch.save file (not a zip archive)`);
  }
  const entries = readZip(bytes, source);
  const pklName = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pklName) throw new InputError(`${source}: a zip, but not a torch.save file (no <archive>/data.pkl entry)`);
  const prefix = pklName.slice(0, -'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== 'little')
    throw new InputError(`${source}: ${prefix}byteorder: expected 'little'`);

  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage | OtherStorage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5)
      throw new InputError(`${source}: unknown persistent id ${JSON.stringify(pid)}`);
    const [, type, key, , numel] = pid as [string, unknown, unknown, unknown, unknown];
    if (typeof key !== 'string' || typeof numel !== 'number')
      throw new InputError(`${source}: malformed storage id ${JSON.stringify(pid)}`);
    const typeName = type instanceof PickleGlobalRef ? type.name : pythonTypeOf(type);
    const entry = `${prefix}data/${key}`;
    if (typeName !== `torch.${FLOAT32_STORAGE}`) return { key, type: typeName };
    const known = storages.get(key);
    if (known) return known;
    const raw = entries.get(entry);
    if (!raw) throw new InputError(`${source}: missing storage ${entry}`);
    if (raw.length !== numel * 4)
      throw new InputError(`${source}: ${entry}: ${raw.length} bytes, expected ${numel} float32 values`);
    const storage = { key, data: float32sOf(raw, numel) };
    storages.set(key, storage);
    return storage;
  };
  return unpickle(entries.get(pklName)!, { source: `${source}: ${pklName}`, globals: torchGlobals(), persistentLoad });
}

/** A reference checkpoint (the dict `torch.save`d by its training script) or a bare state_dict. */
export function decodeTorchCheckpoint(bytes: Uint8Array, source: string): TorchCheckpoint {
  const top = decodeTorchSave(bytes, source);
  if (!(top instanceof Map))
    throw new InputError(
      `${source}: expected a dict at the top, found a ${isTorchTensor(top) ? 'tensor' : pythonTypeOf(top)}`,
    );
  if ([...top.values()].every((v) => isTorchTensor(v) || v instanceof Unread) && top.size > 0)
    return { stateDict: stateDictOf(top, source, '(bare state_dict)'), meta: { bare: true } };

  if (!top.has('model_state_dict'))
    throw new InputError(
      `${source}: model_state_dict: missing (keys found: ${[...top.keys()].map(String).join(', ')}); expected the reference's dict or a bare state_dict`,
    );
  const meta: TorchCheckpointMeta = { bare: false };
  const epoch = top.get('epoch');
  if (epoch !== undefined) meta.epoch = expectInt(epoch, source, 'epoch');
  const numCategories = top.get('num_categories');
  if (numCategories !== undefined) meta.numCategories = expectInt(numCategories, source, 'num_categories');
  const metrics = top.get('metrics');
  if (metrics !== undefined && metrics !== null) {
    if (!(metrics instanceof Map))
      throw new InputError(`${source}: metrics: expected a dict, found ${pythonTypeOf(metrics)}`);
    meta.metrics = metrics;
  }
  const catToIdx = top.get('cat_to_idx');
  if (catToIdx !== undefined) {
    if (!(catToIdx instanceof Map))
      throw new InputError(`${source}: cat_to_idx: expected a dict, found ${pythonTypeOf(catToIdx)}`);
    meta.catToIdx = new Map();
    for (const [name, index] of catToIdx) {
      if (typeof name !== 'string') throw new InputError(`${source}: cat_to_idx: key ${String(name)} is not a string`);
      meta.catToIdx.set(name, expectInt(index, source, `cat_to_idx[${JSON.stringify(name)}]`));
    }
  }
  if (top.has('optimizer_state_dict')) meta.optimizerStateDict = top.get('optimizer_state_dict');
  return { stateDict: stateDictOf(top.get('model_state_dict'), source, 'model_state_dict'), meta };
}

export async function readTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  const bytes = await readInputFile(path);
  return decodeTorchCheckpoint(bytes, path);
}

function stateDictOf(value: unknown, source: string, field: string): Map<string, TorchTensor> {
  if (!(value instanceof Map))
    throw new InputError(`${source}: ${field}: expected a dict, found a ${pythonTypeOf(value)}`);
  const out = new Map<string, TorchTensor>();
  for (const [name, tensor] of value) {
    if (typeof name !== 'string') throw new InputError(`${source}: ${field}: key ${String(name)} is not a string`);
    if (tensor instanceof Unread)
      throw new InputError(
        `${source}: ${field}: ${name}: a ${tensor.what}; only float32 tensors are read (save .float())`,
      );
    if (!isTorchTensor(tensor))
      throw new InputError(`${source}: ${field}: ${name}: expected a tensor, found a ${pythonTypeOf(tensor)}`);
    out.set(name, tensor);
  }
  return out;
}

function expectInt(value: unknown, source: string, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new InputError(
      `${source}: ${field}: expected an integer, found ${typeof value === 'number' ? value : `a ${pythonTypeOf(value)}`}`,
    );
  return value;
}
