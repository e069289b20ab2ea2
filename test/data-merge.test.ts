// `ctl data merge` through the built binary (run `npm run build` first): four `ctl embed --shard I/4` processes into
// four workdirs, merged, must equal one unsharded run row for row; merging again changes nothing; stores that
// disagree are refused, naming the first difference.
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { lockStoreWriter } from '../src/data/store/writers.js';
import { workdirPaths, type EmbeddingView } from '../src/data/workdir.js';
import { ManifestWriter, readManifest, type ManifestRecord } from '../src/download/manifest.js';
import { acquireLock } from '../src/util/lock.js';
import { makeFixture, removeFixtures } from './embed-fixtures.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

/** A new folder under the system's temporary one, removed after the tests. */
const made: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
afterAll(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));

function ctl(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ctlAsync(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((done) => child.on('exit', (code) => done({ code, stderr })));
}

// Batches of 4, so the shards' calls hold other images, and fewer, than the unsharded run's: onnxruntime gives a row
// other bits in a call of another size, and ctl embed pads every call to --batch so that bytes equal holds.
const EMBED = ['embed', '--model', 'tiny', '--device', 'cpu', '--threads', '1', '--batch', '4'];
const VIEWS: EmbeddingView[] = ['products', 'scenes-full'];

async function storeFiles(workdir: string): Promise<string[]> {
  const files: string[] = [];
  for (const view of VIEWS) {
    const dir = join(workdirPaths(workdir).embeddings('tiny', view), 'shards');
    for (const name of await readdir(dir)) files.push(`${view}/${name}:${(await readFile(join(dir, name))).length}`);
  }
  return files.sort();
}

const record = (sig: string, kind: 'scenes' | 'products', status: 'ok' | 'failed', at: string): ManifestRecord => ({
  sig,
  kind,
  status,
  attempts: 1,
  bytes: status === 'ok' ? 100 : 0,
  ms: 5,
  at,
});

describe('ctl data merge', () => {
  afterAll(removeFixtures);

  test('four shards embedded by four processes merge into the unsharded run, row for row; again: no change', async () => {
    const whole = await makeFixture(6); // 12 products, 6 scenes
    const shards = await Promise.all([0, 1, 2, 3].map(() => makeFixture(6)));
    const [single, ...parts] = await Promise.all([
      ctlAsync([...EMBED, '--workdir', whole.workdir]),
      ...shards.map((s, i) => ctlAsync([...EMBED, '--workdir', s.workdir, '--shard', `${i}/4`])),
    ]);
    for (const r of [single, ...parts]) expect(r.code, r.stderr).toBe(0);

    // Each shard downloaded its share: one manifest line per image, and one image tried in two shards (failed in
    // shard 0, fetched later in shard 1: the later outcome wins).
    const { dataset } = whole;
    const images = [
      ...dataset.products.map((p) => ['products', p.sig] as const),
      ...dataset.scenes.map((s) => ['scenes', s.sig] as const),
    ];
    for (const [i, s] of shards.entries()) {
      const writer = await ManifestWriter.open(workdirPaths(s.workdir).imageManifest);
      images.forEach(([kind, sig], k) => {
        if (k % 4 === i) writer.append(record(sig, kind, 'ok', `2026-01-01T00:00:0${i}Z`));
      });
      if (i === 0) writer.append(record(images[1][1], images[1][0], 'failed', '2025-12-31T00:00:00Z'));
      await writer.close();
    }

    const target = await tempDir('ctl-merge-');
    const from = shards.map((s) => s.workdir);
    const merged = ctl(['data', 'merge', '--workdir', target, '--from', ...from, '--json']);
    expect(merged.code, merged.stderr).toBe(0);
    const summary = JSON.parse(merged.stdout);
    expect(summary.stores.map((s: { added: number }) => s.added)).toEqual([12, 6]);
    expect(summary.datasets).toEqual(['dataset/fashion.json']);

    for (const view of VIEWS) {
      const a = await EmbeddingStore.open(workdirPaths(whole.workdir).embeddings('tiny', view));
      const b = await EmbeddingStore.open(workdirPaths(target).embeddings('tiny', view));
      expect(b.meta).toEqual(a.meta);
      const ids = a.ids();
      expect([...b.ids()].sort()).toEqual([...ids].sort());
      const [x, y] = [(await a.read(ids)).data, (await b.read(ids)).data];
      expect(Buffer.from(y.buffer).equals(Buffer.from(x.buffer))).toBe(true);
      expect(await b.verify()).toMatchObject({ ok: true });
    }
    const { latest } = await readManifest(workdirPaths(target).imageManifest);
    expect(latest.size).toBe(images.length);
    expect([...latest.values()].every((r) => r.status === 'ok')).toBe(true);
    expect(await readFile(workdirPaths(target).dataset('fashion'))).toEqual(
      await readFile(workdirPaths(whole.workdir).dataset('fashion')),
    );

    const filesBefore = await storeFiles(target);
    const manifestBefore = await readFile(workdirPaths(target).imageManifest);
    const again = ctl(['data', 'merge', '--workdir', target, '--from', ...from, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout);
    expect(second.stores.map((s: { added: number; alreadyThere: number }) => [s.added, s.alreadyThere])).toEqual([
      [0, 12],
      [0, 6],
    ]);
    expect(second.manifest).toMatchObject({ written: false, taken: 0 });
    expect(await storeFiles(target)).toEqual(filesBefore);
    expect(await readFile(workdirPaths(target).imageManifest)).toEqual(manifestBefore);
  });

  test('stores with different meta, or a row that differs between shards, are refused with the first difference', async () => {
    const dirs = await Promise.all([0, 1, 2].map(() => tempDir('ctl-merge-src-')));
    const meta = (size: number) => ({
      model: 'tiny',
      revision: 'r1',
      dim: 2,
      view: 'products' as const,
      preprocessing: { size: { height: size, width: size }, dtype: 'fp32' },
    });
    const put = async (workdir: string, size: number, ids: string[], rows: number[]) => {
      const store = await EmbeddingStore.openOrCreate(workdirPaths(workdir).embeddings('tiny', 'products'), meta(size));
      await store.append(ids, Float32Array.from(rows));
    };
    await put(dirs[0], 32, ['a', 'b'], [1, 0, 0, 1]);
    await put(dirs[1], 64, ['c'], [1, 0]);
    await put(dirs[2], 32, ['b', 'c'], [0, 1, 0.6, 0.8]);
    const target = await tempDir('ctl-merge-');

    // A shard whose store is the target's own (a link to it): refused, not merged into itself.
    const linked = await tempDir('ctl-merge-link-');
    const linkedStore = workdirPaths(linked).embeddings('tiny', 'products');
    await mkdir(dirname(linkedStore), { recursive: true });
    await symlink(workdirPaths(dirs[0]).embeddings('tiny', 'products'), linkedStore);
    const itself = ctl(['data', 'merge', '--workdir', dirs[0], '--from', linked]);
    expect(itself.code).toBe(2);
    expect(itself.stderr).toContain(`${linkedStore}: is the merge's target; merge from others`);

    const metaDiff = ctl(['data', 'merge', '--workdir', target, '--from', dirs[0], dirs[1]]);
    expect(metaDiff.code).toBe(2);
    expect(metaDiff.stderr).toMatch(/meta\.json: preprocessing\.size\.height: 64 here, 32 in .*meta\.json/);

    await put(dirs[1], 64, ['d'], [0, 1]); // still 64: refused again, and nothing was written meanwhile
    expect(await readdir(target)).toEqual([]);
    const fresh = join(await tempDir('ctl-merge-new-'), 'merged'); // a refused merge makes no target folder either
    expect(ctl(['data', 'merge', '--workdir', fresh, '--from', dirs[0], dirs[1]]).code).toBe(2);
    expect(await readdir(dirname(fresh))).toEqual([]);
    const inside = ctl(['data', 'merge', '--workdir', join(dirs[0], 'merged'), '--from', dirs[0]]);
    expect([inside.code, inside.stderr]).toEqual([2, expect.stringMatching(/is inside --from .*, which is only read/)]);

    const rowDiff = ctl(['data', 'merge', '--workdir', target, '--from', dirs[0], dirs[2]]);
    expect(rowDiff.code, rowDiff.stderr).toBe(0); // b is the same bytes in both
    // Where a local model folder sat differs by machine (and earlier versions did not record it): not a setting.
    const placed = await Promise.all(
      ['/home/a/my-model', '/scratch/my-model', undefined].map(async (location, i) => {
        const dir = await tempDir('ctl-merge-loc-');
        const paths = workdirPaths(dir).embeddings('tiny', 'products');
        await (
          await EmbeddingStore.openOrCreate(paths, { ...meta(32), location })
        ).append([`l${i}`], Float32Array.from([1, 0]));
        return dir;
      }),
    );
    const anywhere = ctl(['data', 'merge', '--workdir', await tempDir('ctl-merge-'), '--from', ...placed]);
    expect(anywhere.code, anywhere.stderr).toBe(0);
    const store = await EmbeddingStore.openOrCreate(workdirPaths(dirs[2]).embeddings('tiny', 'products'), meta(32));
    await store.append(['a'], Float32Array.from([0.8, 0.6]));
    const refused = ctl(['data', 'merge', '--workdir', target, '--from', dirs[0], dirs[2]]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/row a: .* hold different vectors \(element 0: 0\.8.* vs 1\)/);

    expect(ctl(['data', 'merge', '--workdir', target, '--from', target]).stderr).toMatch(/is the target --workdir/);
    // A link to a source is that source: it is only read, never merged into.
    const link = join(await tempDir('ctl-merge-link-'), 'to-source');
    await symlink(dirs[0], link);
    const intoSource = ctl(['data', 'merge', '--workdir', link, '--from', dirs[0]]);
    expect([intoSource.code, intoSource.stderr]).toEqual([2, expect.stringMatching(/is the target --workdir/)]);

    // A merge into a workdir another merge is writing (here this process holds its lock) is refused, naming it.
    const busyTarget = await tempDir('ctl-merge-');
    const other = await acquireLock(busyTarget, () => 'busy');
    try {
      const busy = ctl(['data', 'merge', '--workdir', busyTarget, '--from', dirs[0]]);
      expect([busy.code, busy.stderr]).toEqual([
        2,
        expect.stringMatching(`another ctl data merge into ${busyTarget} is running: process ${process.pid} `),
      ]);
      // The same workdir named through a link is the same merge target.
      const linkToBusy = join(await tempDir('ctl-merge-link-'), 'to-busy');
      await symlink(busyTarget, linkToBusy);
      const busyByLink = ctl(['data', 'merge', '--workdir', linkToBusy, '--from', dirs[0]]);
      expect([busyByLink.code, busyByLink.stderr]).toEqual([2, expect.stringMatching('another ctl data merge into')]);
    } finally {
      await other.release();
    }
    expect(ctl(['data', 'merge', '--workdir', busyTarget, '--from', dirs[0]]).code).toBe(0);

    const [d1, d2] = await Promise.all([0, 1].map(() => tempDir('ctl-merge-src-')));
    for (const [i, d] of [d1, d2].entries()) {
      await mkdir(join(d, 'dataset'));
      await writeFile(workdirPaths(d).dataset('fashion'), `{"version":${i}}\n`);
    }
    const datasets = ctl(['data', 'merge', '--workdir', target, '--from', d1, d2]);
    expect(datasets.code).toBe(2);
    expect(datasets.stderr).toMatch(
      /dataset\/fashion\.json differs from .*: the shards were not run on the same dataset/,
    );
  });

  test('the target store is held while its rows go in: a stage reading it meanwhile is refused (data/store/writers.ts)', async () => {
    const source = await tempDir('ctl-merge-src-');
    const store = await EmbeddingStore.openOrCreate(workdirPaths(source).embeddings('tiny', 'products'), {
      model: 'tiny',
      dim: 2,
      view: 'products',
    });
    await store.append(['a'], Float32Array.from([1, 0]));
    const target = await tempDir('ctl-merge-');
    const targetStore = workdirPaths(target).embeddings('tiny', 'products');
    // As a merge into the store holds it; the CLI's merge must ask for the same lock.
    const other = await lockStoreWriter(targetStore, 'merged', () => 'busy');
    try {
      const merge = ctl(['data', 'merge', '--workdir', target, '--from', source]);
      expect([merge.code, merge.stderr]).toEqual([
        2,
        expect.stringMatching(new RegExp(`${targetStore}: another ctl data merge is writing this store: process`)),
      ]);
    } finally {
      await other.release();
    }
    expect(ctl(['data', 'merge', '--workdir', target, '--from', source]).code).toBe(0);
  });

  test("a shard's manifest is only read: a torn last line stays (its download may be writing it); a corrupt line is refused before anything is written", async () => {
    const [a, b] = await Promise.all([0, 1].map(() => tempDir('ctl-merge-src-')));
    const store = await EmbeddingStore.openOrCreate(workdirPaths(a).embeddings('tiny', 'products'), {
      model: 'tiny',
      revision: 'r1',
      dim: 2,
      view: 'products',
      preprocessing: {},
    });
    await store.append(['p'], Float32Array.from([1, 0]));
    for (const [dir, sig] of [
      [a, 'p'],
      [b, 'q'],
    ]) {
      const writer = await ManifestWriter.open(workdirPaths(dir).imageManifest);
      writer.append(record(sig, 'products', 'ok', '2026-01-01T00:00:00Z'));
      await writer.close();
    }
    const manifestOfB = workdirPaths(b).imageManifest;
    await writeFile(manifestOfB, (await readFile(manifestOfB, 'utf8')) + '{"sig":"r","ki');
    const before = await readFile(manifestOfB);

    const target = await tempDir('ctl-merge-');
    const merged = ctl(['data', 'merge', '--workdir', target, '--from', a, b, '--json']);
    expect(merged.code, merged.stderr).toBe(0);
    expect(JSON.parse(merged.stdout).manifest).toMatchObject({ images: 2, taken: 2 });
    expect(await readFile(manifestOfB)).toEqual(before);

    await writeFile(manifestOfB, 'not json\n' + before.toString());
    const other = await tempDir('ctl-merge-');
    const refused = ctl(['data', 'merge', '--workdir', other, '--from', a, b]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${manifestOfB}:1: line:`);
    expect(await readdir(other)).toEqual([]);
  });
});
