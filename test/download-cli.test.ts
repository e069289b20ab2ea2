// `ctl download` as a user runs it (node dist/cli.js, so `npm run build` first): resume after SIGKILL, graceful
// SIGINT, exit codes and --json.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, getPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IN_PROGRESS_PER_REQUEST, type DownloadSummary } from '../src/download/downloader.js';
import { WORKER_PRIORITY_DROP } from '../src/download/save-image.js';
import { selectTargets } from '../src/download/targets.js';
import { workdirPaths } from '../src/data/workdir.js';
import {
  finalRecords,
  makeJpeg,
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

function start(args: string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, [CLI, 'download', '--workdir', workdir, '--base-url', server.url, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
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
      expect(existsSync(workdirPaths(workdir).imageFile(t.kind, t.sig))).toBe(!isBad);
    }
    expect(await tempFiles(workdir)).toEqual([]);
  });

  it('SIGINT: in-flight requests finish, the manifest is flushed, exit 130; the next run completes', async () => {
    const dataset = await writeDataset(workdir, 10, 2);
    server = await startImageServer({ delayMs: 200 });

    const first = start(['--concurrency', '4', '--grace', '5']);
    await when(() => server.total() >= 4);
    first.child.kill('SIGINT');
    const stopped = await first.done;
    expect(stopped.code, stopped.stderr).toBe(130);
    expect(stopped.stderr).toContain('SIGINT: stopping');

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

  // Where the OS gives threads their own priority and ours can still be lowered that far.
  it.skipIf(process.platform !== 'linux' || getPriority() + WORKER_PRIORITY_DROP > 19)(
    'runs the check workers at a lower priority than the main thread (Linux)',
    async () => {
      const photo = join(workdir, 'photo.jpg');
      await writeFile(photo, await makeJpeg(1));
      // Two images at once: one for each worker (the least busy gets the next).
      const script = join(workdir, 'priorities.mjs');
      await writeFile(
        script,
        `
        import { readFileSync, readdirSync } from 'node:fs';
        import { ImageSaver } from ${JSON.stringify(pathToFileURL(resolve('dist/download/save-image.js')).href)};
        const saver = ImageSaver.start();
        const [photo, dir] = process.argv.slice(2);
        await Promise.all([1, 2].map((i) => saver.save(readFileSync(photo), 'jpeg', dir + '/' + i + '.jpg', 'full')));
        const nice = (tid) => Number(readFileSync('/proc/self/task/' + tid + '/stat', 'utf8').split(') ')[1].split(' ')[16]);
        const others = readdirSync('/proc/self/task').filter((tid) => tid !== String(process.pid)).map(nice);
        console.log(JSON.stringify({ main: nice(process.pid), others }));
        await saver.close();`,
      );
      const child = spawnSync(process.execPath, [script, photo, workdir], { encoding: 'utf8' });
      expect(child.status, child.stderr).toBe(0);
      const { main, others } = JSON.parse(child.stdout) as { main: number; others: number[] };
      expect(main).toBe(getPriority());
      expect(others.filter((n) => n === main + WORKER_PRIORITY_DROP).length).toBe(Math.min(2, availableParallelism()));
      expect(existsSync(join(workdir, '1.jpg')) && existsSync(join(workdir, '2.jpg'))).toBe(true);
    },
  );
});
