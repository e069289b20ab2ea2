// The torch.save format without Python: pickle and zip written by our writer read back by our reader, and the
// reader's refusals on hand-made hostile pickles.
import { describe, expect, it } from 'vitest';
import { unpickle } from '../src/model/torch/pickle.js';
import { InputError } from '../src/util/errors.js';
import { pickle, PyGlobal, PyOrderedDict, PyReduce, PyTuple, type PyValue } from '../src/model/torch/pickle-write.js';
import { decodeTorchCheckpoint, decodeTorchSave } from '../src/model/torch/read-checkpoint.js';
import { encodeTorchCheckpoint, encodeTorchSave, type TorchValue } from '../src/model/torch/write-checkpoint.js';
import { readZip, writeZip } from '../src/model/torch/zip.js';
import type { TorchTensor } from '../src/model/torch/tensor.js';

const noGlobals = { source: 'test.pkl', globals: new Map() };

function tensor(shape: number[], seed: number): TorchTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'F32', shape, data: Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 1000 + i)) };
}

describe('pickle writer and reader', () => {
  it('round-trip plain values: ints of every width, floats, strings, lists, tuples, dicts', () => {
    const value = new Map<string | number, unknown>([
      ['ints', [0, 255, 256, 65535, 65536, -1, -2147483648, 2147483647, 2147483648, -2147483649, 2n ** 70n]],
      ['floats', [0.5, -1.25e-30, Math.PI]],
      ['text', 'héllo ✓'],
      ['tuple', new PyTuple([1, 2, 3, 4, 5])],
      ['empty', new Map()],
      [7, null],
      ['flags', [true, false]],
    ]);
    const back = unpickle(pickle(value as never), noGlobals) as Map<unknown, unknown>;
    expect(back.get('ints')).toEqual([
      0,
      255,
      256,
      65535,
      65536,
      -1,
      -2147483648,
      2147483647,
      2147483648,
      -2147483649,
      2n ** 70n,
    ]);
    expect(back.get('floats')).toEqual([0.5, -1.25e-30, Math.PI]);
    expect(back.get('text')).toBe('héllo ✓');
    expect(back.get('tuple')).toEqual([1, 2, 3, 4, 5]);
    expect(back.get('empty')).toEqual(new Map());
    expect(back.get(7)).toBeNull();
    expect(back.get('flags')).toEqual([true, false]);
  });

  it('refuses a global that is not registered, naming it, before anything is called', () => {
    const evil = pickle(new PyReduce(new PyGlobal('os', 'system'), new PyTuple(['touch /tmp/x'])));
    expect(() => unpickle(evil, noGlobals)).toThrow(/refused global os\.system/);
    const ordered = pickle(new PyOrderedDict(new Map([['a', 1]])));
    expect(() => unpickle(ordered, noGlobals)).toThrow(/refused global collections\.OrderedDict/);
  });

  it('refuses truncated input and non-pickles with InputError', () => {
    const bytes = pickle(new Map([['a', 'bcdef']]));
    expect(() => unpickle(bytes.subarray(0, bytes.length - 4), noGlobals)).toThrow(/truncated pickle/);
    expect(() => unpickle(new TextEncoder().encode('{"json": 1}'), noGlobals)).toThrow(
      /unknown opcode 0x7b|not a pickle/,
    );
  });

  it('a pickle cut off at any byte is an InputError, whatever opcode the cut lands in', () => {
    const bytes = pickle(
      new Map<string, PyValue>([
        ['ints', [7, 300, 70_000, 2 ** 40]],
        ['text', 'x'.repeat(300)],
      ]),
    );
    for (let end = 1; end < bytes.length; end++)
      expect(() => unpickle(bytes.subarray(0, end), noGlobals), `cut at ${end}`).toThrow(InputError);
  });
});

describe('zip writer and reader', () => {
  it('round-trips entries and aligns every entry to 64 bytes', () => {
    const entries = [
      { name: 'a/data.pkl', data: new Uint8Array([1, 2, 3]) },
      { name: 'a/data/0', data: new Uint8Array(100).fill(7) },
      { name: 'a/version', data: new TextEncoder().encode('3\n') },
    ];
    const zip = writeZip(entries);
    const back = readZip(zip, 'test.zip');
    for (const { name, data } of entries) {
      const got = back.get(name)!;
      expect(got).toEqual(data);
      expect(got.byteOffset % 64).toBe(0);
    }
    expect(() => readZip(new Uint8Array(100), 'junk.zip')).toThrow(/not a zip archive/);
  });
});

describe('torch.save archives', () => {
  it('round-trip the reference checkpoint dict', () => {
    const stateDict = new Map([
      ['scene_encoder.0.weight', tensor([4, 3], 1)],
      ['scene_encoder.0.bias', tensor([4], 2)],
      ['log_temperature', tensor([], 3)],
    ]);
    const bytes = encodeTorchCheckpoint({
      epoch: 12,
      modelStateDict: stateDict,
      metrics: new Map([['recall@10', 0.25]]),
      numCategories: 2,
      catToIdx: new Map([
        ['shoes', 0],
        ['bags', 1],
      ]),
    });
    const back = decodeTorchCheckpoint(bytes, 'ckpt.pt');
    expect([...back.stateDict.keys()]).toEqual([...stateDict.keys()]);
    for (const [name, t] of stateDict) expect(back.stateDict.get(name)).toEqual(t);
    expect(back.meta).toMatchObject({ bare: false, epoch: 12, numCategories: 2 });
    expect(back.meta.catToIdx).toEqual(
      new Map([
        ['shoes', 0],
        ['bags', 1],
      ]),
    );
  });

  it('reads a bare state_dict and tells a non-checkpoint dict apart', () => {
    const bare = encodeTorchSave(new PyOrderedDict(new Map([['w', tensor([2, 2], 4)]])));
    expect(decodeTorchCheckpoint(bare, 'bare.pt').meta.bare).toBe(true);
    const other = encodeTorchSave(
      new Map<string, TorchValue>([
        ['weights', tensor([2], 5)],
        ['epoch', 3],
      ]),
    );
    expect(() => decodeTorchCheckpoint(other, 'other.pt')).toThrow(
      /model_state_dict: missing \(keys found: weights, epoch\)/,
    );
    expect(() => decodeTorchSave(pickle(null), 'old.pt')).toThrow(/legacy/);
    expect(() => decodeTorchSave(new Uint8Array([1, 2, 3]), 'x.pt')).toThrow(/not a torch\.save file/);
  });
});
