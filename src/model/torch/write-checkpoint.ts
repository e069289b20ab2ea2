// Writing torch.save files that `torch.load` reads (with weights_only=True too): the zip layout and pickle that
// PyTorch itself writes, float32 tensors only.
import {
  pickle,
  PyGlobal,
  PyOrderedDict,
  PyPersistentId,
  PyReduce,
  PyTuple,
  type PyKey,
  type PyValue,
} from './pickle-write.js';
import { contiguousStrides, FLOAT32_STORAGE, isTorchTensor, type TorchTensor } from './tensor.js';
import { writeZip, type ZipEntry } from './zip.js';
import { elementCount } from '../../util/matrix.js';

/** A value to save: anything the pickle writer takes, with tensors anywhere inside lists, tuples and dicts. */
export type TorchValue =
  PyKey | TorchTensor | TorchValue[] | Map<PyKey, TorchValue> | PyTuple<TorchValue> | PyOrderedDict<TorchValue>;

/** The reference's checkpoint dict. */
export interface TorchCheckpointContents {
  epoch: number;
  /** Saved as an OrderedDict, in this order. */
  modelStateDict: Map<string, TorchTensor>;
  metrics: Map<string, number>;
  numCategories: number;
  catToIdx: Map<string, number>;
  /** Written only when given (PyTorch's optimizer.state_dict() layout). */
  optimizerStateDict?: TorchValue;
}

/** Encode `value` as PyTorch's zip format; `archiveName` is the folder inside the zip (torch uses the file's stem). */
export function encodeTorchSave(value: TorchValue, archiveName = 'archive'): Uint8Array {
  const storages: ZipEntry[] = [];
  const toPy = (v: TorchValue): PyValue => {
    if (isTorchTensor(v)) return tensorReduce(v, storages, archiveName);
    if (Array.isArray(v)) return v.map(toPy);
    if (v instanceof Map) return new Map([...v].map(([k, item]) => [k, toPy(item)]));
    if (v instanceof PyTuple) return new PyTuple(v.items.map(toPy));
    if (v instanceof PyOrderedDict)
      return new PyOrderedDict(new Map([...v.entries].map(([k, item]) => [k, toPy(item)])));
    return v;
  };
  const dataPkl = pickle(toPy(value));
  const text = (s: string) => new TextEncoder().encode(s);
  return writeZip([
    { name: `${archiveName}/data.pkl`, data: dataPkl },
    { name: `${archiveName}/byteorder`, data: text('little') },
    ...storages,
    { name: `${archiveName}/version`, data: text('3\n') },
    { name: `${archiveName}/.data/version`, data: text('3\n') },
  ]);
}

/** `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, its storage queued. */
function tensorReduce(tensor: TorchTensor, storages: ZipEntry[], archiveName: string): PyReduce {
  const count = elementCount(tensor.shape);
  if (tensor.data.length !== count)
    throw new Error(`torch save: a tensor of shape [${tensor.shape}] has ${tensor.data.length} values`);
  const key = String(storages.length);
  const data = tensor.data;
  storages.push({
    name: `${archiveName}/data/${key}`,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
  const storage = new PyPersistentId(
    new PyTuple(['storage', new PyGlobal('torch', FLOAT32_STORAGE), key, 'cpu', count]),
  );
  return new PyReduce(
    new PyGlobal('torch._utils', '_rebuild_tensor_v2'),
    new PyTuple([
      storage,
      0,
      new PyTuple(tensor.shape),
      new PyTuple(contiguousStrides(tensor.shape)),
      false,
      new PyOrderedDict(new Map()),
    ]),
  );
}

/** The reference's checkpoint dict as a torch.save file. */
export function encodeTorchCheckpoint(contents: TorchCheckpointContents, archiveName = 'archive'): Uint8Array {
  const top = new Map<PyKey, TorchValue>([
    ['epoch', contents.epoch],
    ['model_state_dict', new PyOrderedDict<TorchValue>(contents.modelStateDict)],
    ['metrics', contents.metrics],
    ['num_categories', contents.numCategories],
    ['cat_to_idx', contents.catToIdx],
  ]);
  if (contents.optimizerStateDict !== undefined) top.set('optimizer_state_dict', contents.optimizerStateDict);
  return encodeTorchSave(top, archiveName);
}
