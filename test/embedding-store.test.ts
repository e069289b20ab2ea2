import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddingStore, sceneProductKey } from '../src/data/store/embeddings.js';
import { decodeNpy, encodeNpy } from '../src/data/store/npy.js';
import { tempPathFor } from '../src/util/atomic.js';
import { InputError } from '../src/util/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctl-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const meta = { model: 'test-model', dim: 3, view: 'products' as const };
const rows = (...values: number[][]) => Float32Array.from(values.flat());

function hasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('npy', () => {
  it('round-trips and pads the header to 64 bytes as numpy does', () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => i / 7);
    const bytes = encodeNpy(data, [4, 3]);
    expect((bytes.length - data.byteLength) % 64).toBe(0);
    const back = decodeNpy(bytes);
    expect(back.shape).toEqual([4, 3]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it('writes a view of a larger buffer and a 1-D shape as numpy reads them', () => {
    const view = Float32Array.from([9, 1, 2, 3, 9]).subarray(1, 4);
    const bytes = encodeNpy(view, [3]);
    expect(new TextDecoder().decode(bytes.subarray(0, 64))).toContain("'shape': (3,)"); // a tuple, not (3)
    expect(decodeNpy(bytes)).toEqual({ data: Float32Array.from([1, 2, 3]), shape: [3] });
  });

  it('reads the version 2.0 header (4-byte length) and refuses Fortran order, which would transpose the rows', () => {
    const v1 = encodeNpy(Float32Array.from([1, 2, 3, 4]), [2, 2]);
    const dictLength = new DataView(v1.buffer).getUint16(8, true);
    const v2 = new Uint8Array(v1.length + 2);
    v2.set(v1.subarray(0, 6));
    v2[6] = 2;
    new DataView(v2.buffer).setUint32(8, dictLength, true);
    v2.set(v1.subarray(10), 12);
    expect(decodeNpy(v2)).toEqual({ data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] });
    const fortran = Buffer.from(v1);
    fortran.write("'fortran_order': True ", fortran.indexOf("'fortran_order': False"), 'latin1');
    expect(() => decodeNpy(fortran, 'x.npy')).toThrow('x.npy: fortran_order: expected False');
  });

  it.skipIf(!hasNumpy())('is read by numpy.load with the same values', async () => {
    const data = Float32Array.from({ length: 6 }, (_, i) => i * 1.5 - 2);
    const file = join(dir, 'm.npy');
    await writeFile(file, encodeNpy(data, [2, 3]));
    const out = execFileSync('python3', [
      '-c',
      `import numpy as n; a=n.load(${JSON.stringify(file)}); print(a.dtype, a.shape, a.ravel().tolist())`,
    ]);
    expect(out.toString().trim()).toBe('float32 (2, 3) [-2.0, -0.5, 1.0, 2.5, 4.0, 5.5]');
  });
});

describe('EmbeddingStore', () => {
  it('appends shards and reads rows back in any order, missing rows as zeros', async () => {
    const store = await EmbeddingStore.openOrCreate(dir, meta);
    await store.append(['a', 'b'], rows([1, 2, 3], [4, 5, 6]));
    await store.append(['c'], rows([7, 8, 9]));
    const reopened = await EmbeddingStore.open(dir);
    expect(reopened.size).toBe(3);
    expect(reopened.ids()).toEqual(['a', 'b', 'c']);
    const { data, missing } = await reopened.read(['c', 'x', 'a']);
    expect(Array.from(data)).toEqual([7, 8, 9, 0, 0, 0, 1, 2, 3]);
    expect(missing).toEqual(['x']);
    expect((await reopened.readAll()).data.length).toBe(9);
  });

  it('refuses ids it already holds and a store of another model or dim', async () => {
    const store = await EmbeddingStore.openOrCreate(dir, meta);
    await store.append(['a'], rows([1, 2, 3]));
    await expect(store.append(['a'], rows([1, 2, 3]))).rejects.toThrow(/already in the store/);
    await expect(EmbeddingStore.openOrCreate(dir, { ...meta, dim: 4 })).rejects.toThrow(/dim: the store holds 3/);
    await expect(EmbeddingStore.openOrCreate(dir, { ...meta, model: 'other' })).rejects.toThrow(/model/);
  });

  it('of two processes creating one store at once, the second is checked against the meta.json the first wrote', async () => {
    // Both find no store, and both would write meta.json: the loser must not go on under the winner's meta.
    const created = await Promise.allSettled([
      EmbeddingStore.openOrCreate(dir, meta),
      EmbeddingStore.openOrCreate(dir, { ...meta, dim: 4 }),
    ]);
    expect(created.map((c) => c.status).sort()).toEqual(['fulfilled', 'rejected']);
    const winner = created.find((c) => c.status === 'fulfilled')!.value;
    expect((await EmbeddingStore.open(dir)).meta).toEqual(winner.meta);
    expect(created.find((c) => c.status === 'rejected')!.reason).toBeInstanceOf(InputError);
  });

  it('names the field of a damaged meta.json', async () => {
    await EmbeddingStore.openOrCreate(dir, meta);
    const file = join(dir, 'meta.json');
    for (const [content, message] of [
      ['null', `${file}: (top level): expected an object, got null`],
      [JSON.stringify({ ...meta, dim: 0 }), `${file}: dim: expected an integer >= 1, got 0`],
      [JSON.stringify({ ...meta, view: 'faces' }), `${file}: view: expected one of 'products'`],
      ['{', `${file}:1:2: not valid JSON`],
    ]) {
      await writeFile(file, content);
      await expect(EmbeddingStore.open(dir)).rejects.toThrow(InputError);
      await expect(EmbeddingStore.open(dir)).rejects.toThrow(message);
    }
  });

  it('refuses to mix vectors made another way (imported beside embedded), and takes another file of the same import', async () => {
    const embedded = {
      ...meta,
      preprocessing: { processor: 'SiglipImageProcessor', dtype: 'fp32', crop_size: undefined },
    };
    await (await EmbeddingStore.openOrCreate(dir, embedded)).append(['a'], rows([1, 2, 3]));
    await expect(EmbeddingStore.openOrCreate(dir, embedded)).resolves.toBeInstanceOf(EmbeddingStore); // the same kind
    await expect(
      EmbeddingStore.openOrCreate(dir, { ...meta, preprocessing: { importedFrom: 'products.npy' } }),
    ).rejects.toThrow(/preprocessing: the store's vectors were made another way/);
    const other = join(dir, 'imported');
    await EmbeddingStore.openOrCreate(other, { ...meta, preprocessing: { importedFrom: 'part1.npy' } });
    await expect(
      EmbeddingStore.openOrCreate(other, { ...meta, preprocessing: { importedFrom: 'part2.npy' } }),
    ).resolves.toBeInstanceOf(EmbeddingStore);
  });

  it('resumes after a kill between or during shard writes', async () => {
    const store = await EmbeddingStore.openOrCreate(dir, meta);
    await store.append(['a'], rows([1, 2, 3]));
    // A writer killed mid-commit leaves a temp file and an ids file whose .npy never landed.
    // (pid 99999999 is above any kernel's pid_max, so no live process owns it)
    const temp = tempPathFor(join(dir, 'shards', 'w.npy')).replace(`.${process.pid}.`, '.99999999.');
    await writeFile(temp, 'partial');
    await writeFile(join(dir, 'shards', 'w-000001.ids.json'), JSON.stringify(['b']));
    const resumed = await EmbeddingStore.open(dir);
    expect(resumed.ids()).toEqual(['a']);
    expect(resumed.has('b')).toBe(false);
    expect((await readdir(join(dir, 'shards'))).some((n) => n.startsWith('.tmp-'))).toBe(false);
    await resumed.append(['b'], rows([4, 5, 6]));
    expect((await EmbeddingStore.open(dir)).ids()).toEqual(['a', 'b']);
    // The orphan ids file stays while a writer could still be about to move its vectors in, and goes once old.
    const orphan = join(dir, 'shards', 'w-000001.ids.json');
    expect(await readdir(join(dir, 'shards'))).toContain('w-000001.ids.json');
    const longAgo = new Date(Date.now() - 3600_000);
    await utimes(orphan, longAgo, longAgo);
    expect((await EmbeddingStore.open(dir)).ids()).toEqual(['a', 'b']);
    expect(await readdir(join(dir, 'shards'))).not.toContain('w-000001.ids.json');
  });

  it('refuses a truncated shard on open, naming it (a short file would read as zero rows)', async () => {
    const store = await EmbeddingStore.openOrCreate(dir, meta);
    await store.append(['a', 'b'], rows([1, 2, 3, 4, 5, 6]));
    const npy = join(dir, 'shards', 'w-000000.npy');
    await truncate(npy, (await stat(npy)).size - 4);
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(
      `${npy}: 20 bytes of data, but its header says [2,3] float32 (24 bytes): the file is truncated or damaged`,
    );
  });

  it("two processes appending at once never replace each other's shard", async () => {
    await EmbeddingStore.openOrCreate(dir, meta);
    // Both open the store before either commits, so both think the next shard number is 0.
    const [first, second] = await Promise.all([EmbeddingStore.open(dir), EmbeddingStore.open(dir)]);
    await first.append(['a'], rows([1, 2, 3]));
    await second.append(['b'], rows([4, 5, 6]));
    const merged = await EmbeddingStore.open(dir);
    expect(merged.ids().sort()).toEqual(['a', 'b']);
    expect(Array.from((await merged.read(['a', 'b'])).data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps shards of different writers apart and verify() finds NaN, not an overlap of the same bytes', async () => {
    const store = await EmbeddingStore.openOrCreate(dir, meta);
    await store.append(['a'], rows([1, 2, 3]), 's0of2');
    const other = await EmbeddingStore.open(dir); // a second machine that did not see shard s0of2 … simulated:
    await other.append(['b'], rows([NaN, 0, 0]), 's1of2');
    expect((await readdir(join(dir, 'shards'))).filter((n) => n.endsWith('.npy')).sort()).toEqual([
      's0of2-000000.npy',
      's1of2-000000.npy',
    ]);
    // Write an overlapping shard by hand, as two machines with overlapping shards would.
    await writeFile(join(dir, 'shards', 's9-000000.ids.json'), JSON.stringify(['a']));
    await writeFile(join(dir, 'shards', 's9-000000.npy'), encodeNpy(rows([1, 2, 3]), [1, 3]));
    const report = await (await EmbeddingStore.open(dir)).verify();
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(/s1of2-000000\.npy: row 0: value NaN is not finite/);
  });

  it('opens a store whose repeated ids hold the same bytes, and refuses one where they differ', async () => {
    const store = await EmbeddingStore.openOrCreate(dir, meta);
    await store.append(['a', 'b'], rows([1, 2, 3, 4, 5, 6]), 'm0');
    const copy = (name: string, ids: string[], values: number[]) =>
      Promise.all([
        writeFile(join(dir, 'shards', `${name}.ids.json`), JSON.stringify(ids)),
        writeFile(join(dir, 'shards', `${name}.npy`), encodeNpy(rows(values), [ids.length, 3])),
      ]);
    await copy('m1-000000', ['c', 'b'], [7, 8, 9, 4, 5, 6]); // b again, the same vector
    const same = await EmbeddingStore.open(dir);
    expect(same.ids()).toEqual(['a', 'b', 'c']);
    expect(Array.from((await same.read(['b', 'c'])).data)).toEqual([4, 5, 6, 7, 8, 9]);

    await copy('m2-000000', ['a'], [1, 2, 3.5]); // a again, another vector
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(InputError);
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(
      /shards: id a is in m0-000000 and m2-000000 with different vectors \(1 of the 2 repeated ids differ\): remove one of the two/,
    );

    // Past one chunk of compared rows: the last of 5000 repeated ids differs.
    await rm(join(dir, 'shards', 'm2-000000.npy'));
    await rm(join(dir, 'shards', 'm2-000000.ids.json'));
    const many = Array.from({ length: 5000 }, (_, i) => `x${i}`);
    const values = many.flatMap((_, i) => [i, 0, 0]);
    await copy('m3-000000', many, values);
    await copy('m4-000000', many, [...values.slice(0, -1), 1]);
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(
      /id x4999 is in m3-000000 and m4-000000 with different vectors \(1 of the 5001 repeated ids differ\)/,
    );

    // One shard naming an id twice; one whose ids file is not a list of strings.
    await rm(join(dir, 'shards'), { recursive: true });
    await mkdir(join(dir, 'shards'));
    await copy('m5-000000', ['c', 'c'], [1, 2, 3, 4, 5, 6]);
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(/id c is twice in m5-000000 .*: remove that shard/);
    await writeFile(join(dir, 'shards', 'm5-000000.ids.json'), 'null');
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(
      /m5-000000\.ids\.json: expected a list of row ids \(strings\), one per row of its \.npy/,
    );
  });

  it('names hide-product rows by scene and product', () => {
    expect(sceneProductKey('a'.repeat(32), 'b'.repeat(32))).toBe(`${'a'.repeat(32)}_${'b'.repeat(32)}`);
  });
});
