// `ctl embed` through the built binary (run `npm run build` first): flags, device messages, --json, the exit code
// when the embedding service failed images, and resuming after the process is killed mid-run.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { cp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { workdirPaths, type EmbeddingView } from '../src/data/workdir.js';
import { runEmbed } from '../src/embed/run.js';
import { acquireLock } from '../src/util/lock.js';
import { makeFixture, removeFixtures } from './embed-fixtures.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

function ctl(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `ctl` without blocking this process, so that a test's local service can answer it. */
function ctlAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) =>
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    ),
  );
}

/**
 * `ctl embed` of the products with the tiny model on one CPU thread: `run` with the given batch size and commit
 * interval, `resume` the same command with the default ones (a re-run continues what `run` committed).
 */
function tinyProducts(workdir: string, batch: number, commitEvery: number) {
  const tiny = ['--model', 'tiny', '--device', 'cpu', '--threads', '1'];
  const resume = ['embed', '--workdir', workdir, ...tiny, '--kind', 'products'];
  return { resume, run: [...resume, '--batch', String(batch), '--commit-every', String(commitEvery)] };
}

describe('ctl embed (CLI)', () => {
  afterAll(removeFixtures);

  test('--help documents the flags and their defaults', () => {
    const { code, stdout } = ctl(['embed', '--help']);
    expect(code).toBe(0);
    for (const text of [
      '--model',
      'Marqo/marqo-fashionSigLIP',
      '--device',
      '"auto"',
      '--dtype',
      '"fp32"',
      '--scene-view',
      '--hide',
      '--provider',
      '--api-url',
      '--shard',
      '--batch',
      'default: 16',
      '--offline',
    ])
      expect(stdout).toContain(text);
  });

  test('--device cuda without CUDA: exit 2 with the set-up steps; auto falls back to CPU with one line', async () => {
    const { workdir } = await makeFixture(1);
    const cuda = ctl(['embed', '--workdir', workdir, '--model', 'tiny', '--device', 'cuda']);
    expect(cuda.code).toBe(2);
    expect(cuda.stderr).toMatch(/--device cuda: the CUDA provider could not load/);
    expect(cuda.stderr).toContain('CUDA 12 and cuDNN 9');
    expect(cuda.stderr).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node');
    expect(cuda.stderr.trim().split('\n')).toHaveLength(1);

    const auto = ctl(['embed', '--workdir', workdir, '--model', 'tiny', '--device', 'auto', '--json']);
    expect(auto.code).toBe(0);
    expect(auto.stderr.split('\n').filter((l) => /CUDA/.test(l))).toHaveLength(1);
    expect(auto.stderr).toMatch(/CUDA unavailable .*; running on CPU/);
    const summary = JSON.parse(auto.stdout);
    expect(summary).toMatchObject({ model: 'tiny', device: 'cpu', dtype: 'fp32', embedded: 3, failed: 0 });
  });

  test('images prepared on worker threads (the built CLI) give the same vectors, bit for bit, as prepared inline', async () => {
    // Under vitest the source cannot start workers, so runEmbed prepares inline; dist/cli.js uses the workers.
    const { workdir } = await makeFixture(4);
    const inline = `${workdir}-inline`;
    await cp(workdir, inline, { recursive: true });
    onTestFinished(() => rm(inline, { recursive: true, force: true }));
    const settings = { model: 'tiny', device: 'cpu', threads: 1, batch: 3, sceneView: 'hide-product' } as const;
    const cli = ctl([
      'embed',
      '--workdir',
      workdir,
      '--model',
      settings.model,
      '--device',
      settings.device,
      '--threads',
      '1',
      '--batch',
      '3',
      '--scene-view',
      settings.sceneView,
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    await runEmbed({
      workdir: inline,
      domain: 'fashion',
      offline: true,
      provider: 'local',
      dtype: 'fp32',
      prefetch: 2,
      commitEvery: 1,
      kind: 'all',
      hide: 'crop',
      progress: false,
      ...settings,
    });
    for (const view of ['products', 'scenes-hide-product'] as EmbeddingView[]) {
      const read = async (dir: string) =>
        (await EmbeddingStore.open(workdirPaths(dir).embeddings('tiny', view))).readAll();
      const [a, b] = [await read(workdir), await read(inline)];
      expect(a.ids.length).toBeGreaterThan(0);
      expect(a.ids).toEqual(b.ids);
      const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
      expect(bytes(a.data).equals(bytes(b.data)), view).toBe(true);
    }
  });

  test('bad usage exits 2 with one clear line', async () => {
    const { workdir } = await makeFixture(1);
    expect(ctl(['embed', '--workdir', workdir, '--provider', 'http']).stderr).toMatch(
      /--provider http needs --api-url/,
    );
    const bad = ctl(['embed', '--workdir', workdir, '--model', 'not a model']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/neither a folder, a hub id/);
    const offline = ctl(['embed', '--workdir', workdir], { HF_HUB_OFFLINE: '1' });
    expect(offline.code).toBe(2);
    expect(offline.stderr).toMatch(/offline: config\.json of Marqo\/marqo-fashionSigLIP@/);
    // A flag the chosen mode would ignore is refused, before anything loads.
    const http = ['--provider', 'http', '--api-url', 'http://127.0.0.1:9/embed'];
    for (const [args, message] of [
      [['--api-send', 'url', '--retries', '1'], '--api-send, --retries: only with --provider http'],
      [[...http, '--dtype', 'fp16'], '--dtype: only with --provider local'],
      [[...http, '--image-base-url', 'http://127.0.0.1:9'], '--image-base-url: only with --api-send url'],
      [['--hide', 'mask'], '--hide: only with --scene-view hide-product'],
      [['--kind', 'products', '--scene-view', 'hide-product'], '--scene-view: only with --kind scenes or all'],
    ]) {
      const ignored = ctl(['embed', '--workdir', workdir, '--model', 'tiny', ...args]);
      expect(ignored.code, ignored.stderr).toBe(2);
      expect(ignored.stderr).toContain(message);
    }
  });

  test('images the service failed after its retries: exit 1, re-run to retry them; a refused image (4xx) is listed only', async () => {
    const { workdir, dataset } = await makeFixture(2); // 4 products
    const paths = workdirPaths(workdir);
    const image = (i: number) => readFile(paths.imageFile('products', dataset.products[i].sig));
    const [unavailable, refused] = [await image(1), await image(2)];
    let down = true; // the service fails `unavailable` with 503 until the test brings it back
    const server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const status = body.equals(refused) ? 415 : down && body.equals(unavailable) ? 503 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status === 200 ? { embedding: [body.length, 1, 2, 3] } : { error: 'no' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/embed`;
    const args = ['embed', '--workdir', workdir, '--kind', 'products', '--model', 'remote'];
    const http = ['--provider', 'http', '--api-url', url];
    const first = await ctlAsync([...args, ...http, '--retries', '1', '--json']);
    expect(first.code, first.stderr).toBe(1);
    expect(first.stderr).toContain('embed: re-run to retry the image the service failed (what is embedded is kept)');
    const { failed } = JSON.parse(first.stdout).views[0] as { failed: { id: string; reason: string }[] };
    expect(failed.map((f) => [f.id, f.reason])).toEqual([
      [dataset.products[1].sig, 'service'],
      [dataset.products[2].sig, 'refused'],
    ]);
    const storeDir = paths.embeddings('remote', 'products');
    expect((await EmbeddingStore.open(storeDir)).size).toBe(2);

    down = false;
    const rerun = await ctlAsync([...args, ...http]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stderr).toMatch(/skipped b0+\w+ \(refused: HTTP 415/);
    expect((await EmbeddingStore.open(storeDir)).size).toBe(3);
  });

  test('images not on disk yet while a ctl download fetches them: exit 1, re-run once it ends', async () => {
    const { workdir, dataset } = await makeFixture(2);
    const paths = workdirPaths(workdir);
    const notYet = dataset.products[0].sig;
    await rm(paths.imageFile('products', notYet));
    const embed = tinyProducts(workdir, 4, 1).resume;
    // As a `ctl download` of the products holds its lock.
    const download = await acquireLock(join(paths.imagesDir, 'download-products'), () => 'busy');
    try {
      const during = ctl(embed);
      expect(during.code, during.stderr).toBe(1);
      expect(during.stderr).toMatch(
        new RegExp(
          `1 image was not on disk yet while a ctl download fetched into this workdir \\(process ${process.pid} `,
        ),
      );
    } finally {
      await download.release();
    }
    // Without a download running, a missing image is the download's verdict: listed, exit 0.
    const after = ctl(embed);
    expect([after.code, after.stderr]).toEqual([0, expect.stringContaining(`skipped ${notYet} (missing`)]);
  });

  test('SIGINT commits what is embedded and exits 130; the next run continues', async () => {
    const { workdir, dataset } = await makeFixture(20);
    const storeDir = workdirPaths(workdir).embeddings('tiny', 'products');
    const args = tinyProducts(workdir, 2, 100);
    const child = spawn(process.execPath, [CLI, ...args.run], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // The tiny model is generated inside the run, after the signal handler is in place: interrupt then. The run
    // stops after its first batch whenever the signal lands.
    const config = join(workdirPaths(workdir).modelsDir, 'tiny', 'config.json');
    while (!(await stat(config).catch(() => null)) && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/SIGINT: committing what is embedded/);
    const stored = (await EmbeddingStore.open(storeDir)).size;
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(dataset.products.length);
    const rerun = ctl(args.resume);
    expect(rerun.code).toBe(0);
    expect((await EmbeddingStore.open(storeDir)).size).toBe(dataset.products.length);
  });

  test('killed mid-run, a re-run continues from the committed shards and ends complete', async () => {
    const { workdir, dataset } = await makeFixture(150); // 300 products
    const storeDir = workdirPaths(workdir).embeddings('tiny', 'products');
    const args = tinyProducts(workdir, 1, 1);
    const child = spawn(process.execPath, [CLI, ...args.run], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Kill it hard once a few shards are committed.
    for (;;) {
      const shards = await readdir(join(storeDir, 'shards')).catch(() => [] as string[]);
      if (shards.filter((n) => n.endsWith('.npy')).length >= 4 || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await exited;
    const partial = (await EmbeddingStore.open(storeDir)).size;
    expect(partial).toBeGreaterThanOrEqual(4);
    expect(partial).toBeLessThan(dataset.products.length);

    const rerun = ctl([...args.resume, '--json']);
    expect(rerun.code).toBe(0);
    const view = JSON.parse(rerun.stdout).views[0];
    expect(view.alreadyStored).toBe(partial);
    expect(view.embedded).toBe(dataset.products.length - partial);
    const store = await EmbeddingStore.open(storeDir);
    expect(await store.verify()).toMatchObject({ ok: true, count: dataset.products.length });
  });
});
