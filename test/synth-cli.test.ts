// `ctl data synth` and `ctl data verify-embeddings` end to end through the built binary (`npm run build` first).
import { execFile, execFileSync } from 'node:child_process';
import { readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy } from '../src/data/store/npy.js';
import { workdirPaths } from '../src/data/workdir.js';
import { acquireLock } from '../src/util/lock.js';
import { canMount, onTmpfs } from './mount.js';
import { removeTempWorkdirs, tempWorkdir } from './synth-fixtures.js';

const CLI = resolve(__dirname, '../dist/cli.js');

afterAll(removeTempWorkdirs);

function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [CLI, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('ctl data synth (built binary)', () => {
  it('writes the dataset, embeddings and images; --json alone on stdout; a re-run changes nothing', async () => {
    const workdir = await tempWorkdir();
    const args = [
      'data',
      'synth',
      '--workdir',
      workdir,
      '--scenes',
      '120',
      '--products',
      '150',
      '--seed',
      '5',
      '--dim',
      '24',
      '--images',
      '--json',
    ];
    const first = await ctl(args);
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report).toMatchObject({
      domain: 'fashion',
      source: 'synthetic',
      seed: 5,
      counts: { scenes: 120, products: 150, categories: 10 },
    });
    expect(report.embeddings.views.map((v: { appended: number }) => v.appended)).toEqual([
      150,
      120,
      report.counts.pairs,
    ]);
    expect(report.images.written).toBe(270);
    expect(first.stderr).toMatch(/synthetic fashion \(seed 5\)/);

    const paths = workdirPaths(workdir);
    const dataset = await readFile(paths.dataset('fashion'));
    const second = await ctl(args);
    expect(second.code, second.stderr).toBe(0);
    const again = JSON.parse(second.stdout);
    expect(again.embeddings.views.map((v: { appended: number }) => v.appended)).toEqual([0, 0, 0]);
    expect(again.images).toMatchObject({ written: 0, skipped: 270 });
    expect((await readFile(paths.dataset('fashion'))).equals(dataset)).toBe(true);

    const verify = await ctl(['data', 'verify-embeddings', '--workdir', workdir, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const checked = JSON.parse(verify.stdout);
    expect(checked.ok).toBe(true);
    expect(checked.stores.map((s: { view: string }) => s.view)).toEqual([
      'products',
      'scenes-full',
      'scenes-hide-product',
    ]);
    expect(checked.stores[0]).toMatchObject({ model: 'synthetic', count: 150, dim: 24, problems: [] });

    // A model's stores kept elsewhere and linked in are checked as well.
    const moved = join(await tempWorkdir(), 'synthetic');
    await rename(join(workdir, 'embeddings', 'synthetic'), moved);
    await symlink(moved, join(workdir, 'embeddings', 'synthetic'));
    const linked = await ctl(['data', 'verify-embeddings', '--workdir', workdir, '--json']);
    expect(linked.code, linked.stderr).toBe(0);
    expect(JSON.parse(linked.stdout).stores.map((s: { count: number }) => s.count)).toEqual(
      checked.stores.map((s: { count: number }) => s.count),
    );
  });

  it('verify-embeddings exits 1 naming the bad shard file and row; 2 when there is no store (of that view)', async () => {
    const workdir = await tempWorkdir();
    const made = await ctl(['data', 'synth', '--workdir', workdir, '--scenes', '30', '--products', '40', '--dim', '8']);
    expect(made.code, made.stderr).toBe(0);
    const shards = join(workdirPaths(workdir).embeddings('synthetic', 'scenes-full'), 'shards');
    const npy = (await readdir(shards)).find((n) => n.endsWith('.npy'))!;
    const { data, shape } = decodeNpy(await readFile(join(shards, npy)));
    data[3 * 8 + 1] = NaN;
    await writeFile(join(shards, npy), encodeNpy(data, shape));

    const bad = await ctl([
      'data',
      'verify-embeddings',
      '--workdir',
      workdir,
      '--model',
      'synthetic',
      '--view',
      'scenes-full',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/BAD synthetic scenes-full/);
    expect(bad.stderr).toContain(`${join(shards, npy)}: row 3: value NaN is not finite`);
    const good = await ctl(['data', 'verify-embeddings', '--workdir', workdir, '--view', 'products']);
    expect(good.code, good.stderr).toBe(0);

    const none = await ctl(['data', 'verify-embeddings', '--workdir', await tempWorkdir()]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no embedding stores under/);
    // A view the workdir has no store of is bad usage too, not a bad store.
    await rm(workdirPaths(workdir).embeddings('synthetic', 'scenes-hide-product'), { recursive: true });
    const noView = await ctl(['data', 'verify-embeddings', '--workdir', workdir, '--view', 'scenes-hide-product']);
    expect([noView.code, noView.stderr]).toEqual([
      2,
      expect.stringMatching(/no embedding stores under .* of view scenes-hide-product/),
    ]);
  });

  it('refuses embeddings larger than memory or the free disk before generating anything', async () => {
    const workdir = await tempWorkdir();
    const huge = await ctl([
      'data',
      'synth',
      '--workdir',
      workdir,
      ...['--scenes', '10000000', '--products', '10000000', '--dim', '4096'],
    ]);
    expect([huge.code, huge.stderr]).toEqual([
      2,
      expect.stringMatching(
        /--dim 4096: .*about [\d.]+ [GT]B, held in memory at once \(this machine has [\d.]+ GB\): lower --dim or the sizes/,
      ),
    ]);
    expect(await readdir(workdir)).toEqual([]);
    if (!canMount()) return; // a small disk: a tmpfs of 1 MB (root with CAP_SYS_ADMIN, as in CI's container)
    await onTmpfs(workdir, 'size=1m', async () => {
      const full = await ctl([
        'data',
        'synth',
        '--workdir',
        workdir,
        ...['--scenes', '3000', '--products', '3000', '--dim', '512'],
      ]);
      expect([full.code, full.stderr]).toEqual([
        2,
        expect.stringMatching(/--dim 512: .*about [\d.]+ MB on disk, .* has 1\.0 MB free/),
      ]);
      expect(await readdir(workdir)).toEqual([]);
      // Room for one world's stores, not two: a second run over the first keeps its stores, so it is not refused.
      execFileSync('mount', ['-o', 'remount,size=40m', workdir]);
      const sizes = ['--scenes', '3000', '--products', '3000', '--dim', '512'];
      for (const run of ['first', 'again']) {
        const made = await ctl(['data', 'synth', '--workdir', workdir, ...sizes]);
        expect(made.code, `${run}: ${made.stderr}`).toBe(0);
      }
    });
  }, 30_000);

  it.skipIf(!canMount())('names a read-only workdir as such (Node says ENOENT for it)', async () => {
    const workdir = await tempWorkdir();
    await onTmpfs(workdir, 'ro,size=1m', async () => {
      const refused = await ctl([
        'data',
        'synth',
        '--workdir',
        join(workdir, 'sub'),
        '--scenes',
        '100',
        '--products',
        '100',
      ]);
      expect([refused.code, refused.stderr]).toEqual([
        1,
        expect.stringMatching(/error: cannot create .*sub: EROFS \(.* cannot be written\)\n$/),
      ]);
    });
  });

  it('one synth of a workdir at a time, and no stage reads its dataset meanwhile, naming the writer', async () => {
    const workdir = await tempWorkdir();
    const sizes = ['--scenes', '100', '--products', '100', '--dim', '8'];
    expect((await ctl(['data', 'synth', '--workdir', workdir, ...sizes])).code).toBe(0);
    const dataset = workdirPaths(workdir).dataset('fashion');
    const lock = await acquireLock(dataset, () => 'busy'); // as a synth rewriting it holds it
    try {
      const second = await ctl(['data', 'synth', '--workdir', workdir, ...sizes]);
      expect([second.code, second.stderr]).toEqual([
        2,
        expect.stringMatching(new RegExp(`another ctl data synth into .* is running: process ${process.pid} on`)),
      ]);
      const reader = await ctl(['data', 'stats', '--workdir', workdir]);
      expect([reader.code, reader.stderr]).toEqual([
        2,
        expect.stringMatching(
          new RegExp(`fashion\\.json is being rewritten by ctl data synth: process ${process.pid} on`),
        ),
      ]);
    } finally {
      await lock.release();
    }
    expect((await ctl(['data', 'stats', '--workdir', workdir])).code).toBe(0);
  });

  it('rejects bad usage with exit 2 and documents every flag with its default', async () => {
    const workdir = await tempWorkdir();
    expect((await ctl(['data', 'synth', '--workdir', workdir, '--scenes', '0'])).code).toBe(2);
    const formatAlone = await ctl(['data', 'synth', '--workdir', workdir, '--format', 'png']);
    expect(formatAlone.code).toBe(2);
    expect(formatAlone.stderr).toContain('--format: only with --images');
    const help = await ctl(['data', 'synth', '--help']);
    expect(help.code).toBe(0);
    for (const flag of [
      '--scenes',
      '--products',
      '--seed',
      '--domain',
      '--dim',
      '--images',
      '--format',
      '--force',
      '--workdir',
      '--json',
    ])
      expect(help.stdout).toContain(flag);
    expect(help.stdout).toMatch(/default: 30000/);
  });
});
