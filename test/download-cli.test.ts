// `ctl download` as a user runs it (node dist/cli.js, so `npm run build` first): resume after SIGKILL, graceful
// SIGINT, exit codes and --json.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IN_PROGRESS_PER_REQUEST, type DownloadSummary } from '../src/download/downloader.js';
import { selectTargets } from '../src/download/targets.js';
import { inShard } from '../src/data/shard.js';
import { workdirPaths } from '../src/data/workdir.js';
import {
  finalRecords,
  manifestLines,
  startImageServer,
  tempFiles,
  writeDataset,
  type ImageServer,
} from './download-fixtures.js';

const CLI = resolve('dist/cli.js');
let workdir: string;
let server: ImageServer;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` first');
});
beforeEach(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'ctl-download-cli-'));
});
afterEach(async () => {
  await server?.close();
  await rm(workdir, { recursive: true, force: true });
});

/** `ctl download args`; with `fileSizeKiB`, under that file-size limit (`ulimit -f`), killed if still running after 20 s. */
function start(
  args: string[],
  { fileSizeKiB }: { fileSizeKiB?: number } = {},
): {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
} {
  const argv = [CLI, 'download', '--workdir', workdir, '--base-url', server.url, ...args];
  const child =
    fileSizeKiB === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -f ${fileSizeKiB} && exec "$0" "$@"`, process.execPath, ...argv], {
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: 20_000,
          killSignal: 'SIGKILL',
        });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

const run = (args: string[]) => start(args).done;

async function when(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

describe('ctl download (CLI)', () => {
  it('resumes after SIGKILL: every image ends present and valid, none fetched more than once more than needed', async () => {
    const dataset = await writeDataset(workdir, 40, 3);
    const targets = selectTargets(dataset, { kind: 'all' });
    expect(targets.length).toBe(160);
    server = await startImageServer({ delayMs: 10 });

    const first = start(['--concurrency', '4', '--timeout', '2']);
    await when(() => server.total() >= 50);
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    const fetchedBeforeKill = server.total();
    expect(fetchedBeforeKill).toBeLessThan(160);
    await appendFile(workdirPaths(workdir).imageManifest, '{"sig":"0f0f'); // as if the kill tore a line

    const second = await run(['--concurrency', '4', '--timeout', '2', '--json']);
    expect(second.code, second.stderr).toBe(0);
    const summary = JSON.parse(second.stdout) as DownloadSummary;
    expect(summary.state).toEqual({ ok: 160, missing: 0, invalid: 0, failed: 0, pending: 0 });
    expect(summary.tornManifestBytes).toBe('{"sig":"0f0f'.length);
    // Whatever was settled before the kill was not fetched again: only images in progress at the kill repeat.
    const inProgress = 4 * IN_PROGRESS_PER_REQUEST;
    expect(summary.todo).toBeLessThanOrEqual(160 - fetchedBeforeKill + inProgress);
    expect(server.total()).toBeLessThanOrEqual(160 + inProgress);
    for (const t of targets) expect(server.count(t.sig)).toBeLessThanOrEqual(2);

    const records = await finalRecords(workdir);
    for (const t of targets) {
      expect(records.get(t.sig)?.status).toBe('ok');
      const { info } = await sharp(workdirPaths(workdir).imageFile(t.kind, t.sig))
        .raw()
        .toBuffer({ resolveWithObject: true });
      expect(info.width).toBeGreaterThan(0);
    }
    expect(await tempFiles(workdir)).toEqual([]);
  });

  it('checks images on its worker threads: corrupt and cut JPEGs are refused with the reason, no file or temp file left', async () => {
    const dataset = await writeDataset(workdir, 12, 2);
    const targets = selectTargets(dataset, { kind: 'all' });
    server = await startImageServer();
    const bad = targets.slice(0, 6);
    bad.forEach((t, i) => server.behaviours.set(t.sig, i % 2 ? 'corrupt' : 'cut'));
    // Bodies that come in parts are joined into a buffer of their own, which moves to the worker whole.
    for (const t of targets.slice(6, 12)) server.behaviours.set(t.sig, 'in-parts');

    const result = await run(['--json', '--concurrency', '8']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as DownloadSummary;
    expect(summary.state).toEqual({
      ok: targets.length - bad.length,
      missing: 0,
      invalid: bad.length,
      failed: 0,
      pending: 0,
    });
    const records = await finalRecords(workdir);
    for (const t of targets) {
      const isBad = bad.includes(t);
      expect(records.get(t.sig)?.status).toBe(isBad ? 'invalid' : 'ok');
      if (isBad) expect(records.get(t.sig)?.reason).toMatch(/^not decodable: /);
      else expect(records.get(t.sig)?.bytes).toBe((await server.image(t.sig)).length);
      expect(existsSync(workdirPaths(workdir).imageFile(t.kind, t.sig))).toBe(!isBad);
    }
    expect(await tempFiles(workdir)).toEqual([]);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    '%s: in-flight requests finish, the manifest is flushed, exit %i; the next run completes',
    async (signal, code) => {
      const dataset = await writeDataset(workdir, 10, 2);
      server = await startImageServer({ delayMs: 200 });

      const first = start(['--concurrency', '4', '--grace', '5']);
      await when(() => server.total() >= 4);
      first.child.kill(signal);
      const stopped = await first.done;
      expect(stopped.code, stopped.stderr).toBe(code);
      expect(stopped.stderr).toContain(`${signal}: stopping`);

      const lines = await manifestLines(workdir); // throws on a torn line
      expect(lines.length).toBe(server.total()); // every request sent was answered, validated and recorded
      for (const record of lines) {
        expect(record.status).toBe('ok');
        expect(existsSync(workdirPaths(workdir).imageFile(record.kind, record.sig))).toBe(true);
      }
      expect(lines.length).toBeLessThan(30);

      server.options.delayMs = 0;
      const second = await run(['--json']);
      expect(second.code, second.stderr).toBe(0);
      expect((JSON.parse(second.stdout) as DownloadSummary).state.ok).toBe(
        selectTargets(dataset, { kind: 'all' }).length,
      );
      expect(server.total()).toBe(30);
    },
  );

  it('a manifest the disk refuses: exit 1 naming the file and the cause, the process exits; the next run completes', async () => {
    const dataset = await writeDataset(workdir, 60, 2);
    server = await startImageServer();
    // 20 KiB: every image (~8 KB) fits, the manifest (~200 bytes a line) does not: its writes fail with EFBIG.
    const refused = await start(['--concurrency', '4'], { fileSizeKiB: 20 }).done;
    expect([refused.signal, refused.code], refused.stderr).toEqual([null, 1]); // SIGKILL: it hung
    expect(refused.stderr).toContain(
      `ctl download: error: cannot write ${workdirPaths(workdir).imageManifest}: EFBIG: file too large`,
    );

    const second = await run(['--json']);
    expect(second.code, second.stderr).toBe(0);
    expect((JSON.parse(second.stdout) as DownloadSummary).state.ok).toBe(
      selectTargets(dataset, { kind: 'all' }).length,
    );
    expect(await tempFiles(workdir)).toEqual([]);
  });

  it('refuses a download of some of the same images while one runs: exit 2, naming the run that holds them', async () => {
    const dataset = await writeDataset(workdir, 10, 2);
    server = await startImageServer();
    for (const scene of dataset.scenes) server.behaviours.set(scene.sig, 'held'); // the first run waits for them

    const all = start([]);
    await when(() => server.total() > 0);
    const products = await run(['--kind', 'products']);
    expect(products.code).toBe(2);
    expect(products.stderr).toMatch(
      new RegExp(
        `^ctl download: error: another ctl download that may fetch the same images is running \\(fetching scenes and products\\): ` +
          `process ${all.child.pid} on .* since .*; wait for it, or stop it`,
        'm',
      ),
    );
    server.release();
    expect((await all.done).code).toBe(0);
    for (const t of selectTargets(dataset, { kind: 'all' })) expect(server.count(t.sig), t.sig).toBe(1);
  });

  it('the shards of one --shard I/N run side by side', async () => {
    const dataset = await writeDataset(workdir, 10, 2);
    const targets = selectTargets(dataset, { kind: 'all' });
    server = await startImageServer();
    for (const t of targets) if (inShard(t.sig, { index: 0, count: 2 })) server.behaviours.set(t.sig, 'held');

    const first = start(['--shard', '0/2']); // holds its lock until released
    await when(() => server.total() > 0);
    const second = await run(['--shard', '1/2']);
    server.release();
    expect([second.code, (await first.done).code]).toEqual([0, 0]);
    for (const t of targets) expect(server.count(t.sig), t.sig).toBe(1);
  });

  it('exit codes: 2 for bad usage or no dataset, 1 while transient failures remain, 0 once settled', async () => {
    server = await startImageServer({ fallback: '500' });
    const noDataset = await run([]);
    expect(noDataset.code).toBe(2);
    expect(noDataset.stderr).toMatch(/run `ctl data fetch` or `ctl data synth`/);
    expect((await run(['--concurrency', '0'])).code).toBe(2);

    await writeDataset(workdir, 3, 1);
    const failing = await run(['--retries', '0', '--kind', 'scenes', '--json']);
    expect(failing.code).toBe(1);
    const summary = JSON.parse(failing.stdout) as DownloadSummary;
    expect(summary.results.failed).toBe(3);
    expect(summary.retryable).toBe(3);
    expect(summary.topReasons).toEqual([{ reason: 'http 500 (after 1 attempts)', count: 3 }]);

    server.options.fallback = 'ok';
    const fixed = await run(['--kind', 'scenes', '--json']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect((JSON.parse(fixed.stdout) as DownloadSummary).state.ok).toBe(3);
  });
});
