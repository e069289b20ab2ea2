// The downloader against a fault-injecting local host: final statuses, retries, waits, what stays on disk.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { downloadImages, type ImageDownloadOptions } from '../src/download/downloader.js';
import type { ImageTarget } from '../src/download/targets.js';
import { inShard, type Shard } from '../src/data/shard.js';
import { workdirPaths } from '../src/data/workdir.js';
import {
  finalRecords,
  manifestLines,
  sigOf,
  startImageServer,
  tempFiles,
  type Behaviour,
  type ImageServer,
} from './download-fixtures.js';
import { tempPathFor } from '../src/util/atomic.js';

let workdir: string;
let server: ImageServer;

beforeEach(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'ctl-download-'));
});
afterEach(async () => {
  await server?.close();
  await rm(workdir, { recursive: true, force: true });
});

/** Small timeouts and backoffs so the faults cost milliseconds. */
function options(extra: Partial<ImageDownloadOptions> = {}): ImageDownloadOptions {
  return {
    workdir,
    baseUrl: server.url,
    concurrency: 4,
    timeoutMs: 300,
    retries: 2,
    backoff: { baseMs: 10, maxMs: 40, retryAfterMaxMs: 5_000 },
    maxBytes: 200_000,
    retryFailed: false,
    verifyExisting: false,
    graceMs: 1_000,
    progress: false,
    ...extra,
  };
}

const file = (t: ImageTarget) => workdirPaths(workdir).imageFile(t.kind, t.sig);

describe('download against a faulty host', () => {
  // requests: what the host sees, when more than one per attempt (redirects).
  const cases: [
    Behaviour,
    { status: string; attempts: number; requests?: number; reason?: RegExp; permanent?: boolean; http?: number },
  ][] = [
    ['ok', { status: 'ok', attempts: 1, http: 200 }],
    ['404', { status: 'missing', attempts: 1, reason: /^http 404$/, permanent: true, http: 404 }],
    ['410', { status: 'missing', attempts: 1, reason: /^http 410$/, permanent: true, http: 410 }],
    ['403', { status: 'failed', attempts: 1, reason: /^http 403$/, permanent: true, http: 403 }],
    ['429-once', { status: 'ok', attempts: 2, http: 200 }],
    ['500-once', { status: 'ok', attempts: 2, http: 200 }],
    ['redirect', { status: 'ok', attempts: 1, requests: 2, http: 200 }],
    [
      'redirect-loop',
      { status: 'failed', attempts: 1, requests: 4, reason: /^http 302$/, permanent: false, http: 302 },
    ],
    [
      'redirect-bad',
      {
        status: 'failed',
        attempts: 1,
        reason: /^bad redirect target 'http:\/\/\[bad\/400x\//,
        permanent: true,
        http: 302,
      },
    ],
    [
      'redirect-ftp',
      { status: 'failed', attempts: 1, reason: /^bad redirect target 'ftp:\/\/127/, permanent: true, http: 302 },
    ],
    ['500', { status: 'failed', attempts: 3, reason: /^http 500 \(after 3 attempts\)$/, permanent: false, http: 500 }],
    ['stall', { status: 'failed', attempts: 3, reason: /^body timeout \(after 3 attempts\)$/, permanent: false }],
    [
      'truncated',
      {
        status: 'failed',
        attempts: 3,
        reason: /(truncated body|connection closed).*\(after 3 attempts\)$/,
        permanent: false,
      },
    ],
    ['html', { status: 'invalid', attempts: 1, reason: /^html page \(content-type text\/html\)$/, permanent: true }],
    ['html-as-jpeg', { status: 'invalid', attempts: 1, reason: /^html page$/, permanent: true }],
    ['corrupt', { status: 'invalid', attempts: 1, reason: /^not decodable: /, permanent: true }],
    ['cut', { status: 'invalid', attempts: 1, reason: /^not decodable: /, permanent: true }],
    ['huge', { status: 'invalid', attempts: 1, reason: /^too large/, permanent: true }],
    ['huge-chunked', { status: 'invalid', attempts: 1, reason: /^too large/, permanent: true }],
    ['empty', { status: 'invalid', attempts: 1, reason: /^empty body$/, permanent: true }],
  ];

  it('settles every fault with the right status, retries only transient ones, keeps only valid files', async () => {
    server = await startImageServer();
    const targets: ImageTarget[] = cases.map(([behaviour], i) => {
      const sig = sigOf(`fault-${behaviour}`);
      server.behaviours.set(sig, behaviour);
      return { sig, kind: i % 2 ? 'products' : 'scenes' };
    });

    const summary = await downloadImages(targets, options());

    const records = await finalRecords(workdir);
    cases.forEach(([behaviour, expected], i) => {
      const target = targets[i];
      const record = records.get(target.sig)!;
      expect(record, behaviour).toBeDefined();
      expect({ behaviour, status: record.status, attempts: record.attempts }).toEqual({
        behaviour,
        status: expected.status,
        attempts: expected.attempts,
      });
      expect(server.count(target.sig), behaviour).toBe(expected.requests ?? expected.attempts);
      if (expected.reason) expect(record.reason, behaviour).toMatch(expected.reason);
      if (expected.permanent !== undefined) expect(Boolean(record.permanent), behaviour).toBe(expected.permanent);
      if (expected.http !== undefined) expect(record.http, behaviour).toBe(expected.http);
      // Only ok images exist on disk, and they are the exact bytes served.
      expect(existsSync(file(target)), behaviour).toBe(expected.status === 'ok');
    });
    for (const [i, [, expected]] of cases.entries()) {
      if (expected.status !== 'ok') continue;
      const served = await server.image(targets[i].sig);
      expect((await sharp(file(targets[i])).metadata()).format).toBe('jpeg');
      expect(records.get(targets[i].sig)!.bytes).toBe(served.length);
    }
    expect(await tempFiles(workdir)).toEqual([]);

    // Retry-After: 1 was honoured: the second request came at least a second after the first.
    const [first, second] = server.requests.get(sigOf('fault-429-once'))!;
    expect(second - first).toBeGreaterThanOrEqual(950);

    expect(summary.results).toEqual({ ok: 4, missing: 2, invalid: 7, failed: 7 });
    expect(summary.retryable).toBe(4); // 500, stall, truncated, redirect-loop
    expect(summary.requests).toBe(cases.reduce((n, [, e]) => n + e.attempts, 0));
    expect(summary.retries).toBe(summary.requests - cases.length);
    expect(summary.state).toEqual({ ok: 4, missing: 2, invalid: 7, failed: 7, pending: 0 });
    expect(summary.stopped).toBe(false);
    expect(summary.topReasons.length).toBeGreaterThan(0);
  });

  it('fast validation: a cut body fails on its end marker, corrupt data inside a whole JPEG passes undecoded; a drip-fed body hits the attempt deadline', async () => {
    server = await startImageServer();
    const behaviours: Behaviour[] = ['ok', 'cut', 'corrupt', 'drip'];
    const targets = behaviours.map((b): ImageTarget => ({ sig: sigOf(`fast-${b}`), kind: 'scenes' }));
    targets.forEach((t, i) => server.behaviours.set(t.sig, behaviours[i]));

    await downloadImages(targets, options({ validation: 'fast', retries: 0 }));

    const records = await finalRecords(workdir);
    expect(targets.map((t) => [records.get(t.sig)?.status, records.get(t.sig)?.reason])).toEqual([
      ['ok', undefined],
      ['invalid', 'truncated jpeg (no end marker)'],
      ['ok', undefined],
      ['failed', 'attempt deadline exceeded (after 1 attempts)'],
    ]);
    expect(targets.map((t) => existsSync(file(t)))).toEqual([true, false, true, false]);
  });

  it('does not ask again for permanent failures unless retryFailed; transient ones are asked again', async () => {
    server = await startImageServer();
    const named = (b: Behaviour) => ({ sig: sigOf(`again-${b}`), kind: 'products' as const });
    const behaviours: Behaviour[] = ['ok', '404', '403', 'html', '500'];
    for (const b of behaviours) server.behaviours.set(named(b).sig, b);
    const targets = behaviours.map(named);

    await downloadImages(targets, options({ retries: 0 }));
    expect(behaviours.map((b) => server.count(named(b).sig))).toEqual([1, 1, 1, 1, 1]);

    // Second run: the ok image and the permanent failures are settled; only the 500 is asked again.
    const second = await downloadImages(targets, options({ retries: 0 }));
    expect(behaviours.map((b) => server.count(named(b).sig))).toEqual([1, 1, 1, 1, 2]);
    expect(second.settled).toEqual({ ok: 1, missing: 1, invalid: 1, failed: 1 });
    expect(second.todo).toBe(1);

    // The host is fixed; --retry-failed asks for every non-ok image again.
    for (const b of behaviours) server.behaviours.set(named(b).sig, 'ok');
    const third = await downloadImages(targets, options({ retries: 0, retryFailed: true }));
    expect(behaviours.map((b) => server.count(named(b).sig))).toEqual([1, 2, 2, 2, 3]);
    expect(third.state).toEqual({ ok: 5, missing: 0, invalid: 0, failed: 0, pending: 0 });
    for (const t of targets) expect(existsSync(file(t))).toBe(true);
  });

  it('backs concurrency off under a 429 storm and recovers', async () => {
    server = await startImageServer({ throttleFirst: 30, throttleRetryAfter: '0' });
    const targets: ImageTarget[] = Array.from({ length: 60 }, (_, i) => ({ sig: sigOf(`storm-${i}`), kind: 'scenes' }));

    const summary = await downloadImages(targets, options({ concurrency: 8, retries: 30 }));

    expect(summary.state.ok).toBe(60);
    expect(summary.concurrency.max).toBe(8);
    expect(summary.concurrency.min).toBeLessThanOrEqual(2);
    expect(summary.concurrency.final).toBeGreaterThan(summary.concurrency.min);
  });

  it('never has more than `concurrency` requests at the host, retries included', async () => {
    server = await startImageServer({ delayMs: 20 });
    const targets: ImageTarget[] = Array.from({ length: 24 }, (_, i) => ({
      sig: sigOf(`slots-${i}`),
      kind: 'products',
    }));
    for (const t of targets.slice(0, 6)) server.behaviours.set(t.sig, '500-once');

    const summary = await downloadImages(targets, options({ concurrency: 3 }));

    expect(summary.state.ok).toBe(24);
    expect(summary.retries).toBe(6);
    expect(server.total()).toBe(30);
    expect(server.peak()).toBe(3);
  });

  it("waits out many targets' retries at once without a listener-leak warning", async () => {
    server = await startImageServer({ fallback: '500' });
    const targets: ImageTarget[] = Array.from({ length: 24 }, (_, i) => ({ sig: sigOf(`wait-${i}`), kind: 'scenes' }));
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const backoff = { baseMs: 200, maxMs: 200, retryAfterMaxMs: 5_000 };
      const summary = await downloadImages(targets, options({ retries: 1, backoff }));
      expect(summary.state.failed).toBe(24);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });

  it('refuses a run that may fetch an image a running one fetches; other kinds and other shards of one N run beside it', async () => {
    server = await startImageServer();
    const named = (kind: ImageTarget['kind']) =>
      Array.from({ length: 8 }, (_, i): ImageTarget => ({ sig: sigOf(`lock-${kind}-${i}`), kind }));
    const [products, scenes] = [named('products'), named('scenes')];
    const half = { index: 0, count: 2 };
    const inHalf = products.filter((t) => inShard(t.sig, half));
    for (const t of inHalf) server.behaviours.set(t.sig, 'held'); // its run holds its lock until released

    const running = downloadImages(inHalf, options({ shard: half }));
    await vi.waitUntil(() => server.total() > 0);
    const refused = (targets: ImageTarget[], shard?: Shard) =>
      expect(downloadImages(targets, options({ shard }))).rejects.toThrow(
        /^another ctl download that may fetch the same images is running \(fetching products, shard 0\/2\): process \d+ .*wait for it, or stop it/,
      );
    await refused(inHalf, half); // the same run
    await refused(products); // all of the kind
    await refused([...scenes, ...products]); // all kinds
    await refused(products.slice(0, 1)); // another --limit
    await refused(
      products.filter((t) => inShard(t.sig, { index: 1, count: 3 })),
      { index: 1, count: 3 },
    ); // another N

    const otherHalf = { index: 1, count: 2 };
    const beside = [
      await downloadImages(scenes, options()),
      await downloadImages(
        products.filter((t) => inShard(t.sig, otherHalf)),
        options({ shard: otherHalf }),
      ),
    ];
    server.release();
    expect([...beside, await running].map((s) => s.state.ok)).toEqual([8, 8 - inHalf.length, inHalf.length]);
    for (const t of [...products, ...scenes]) expect(server.count(t.sig), t.sig).toBe(1);
    expect((await downloadImages(products, options())).settled.ok).toBe(8); // the locks went with their runs
  });

  it('reconciles with the disk at start: adopts valid files, refetches invalid or lost ones, cleans temp files, cuts a torn line', async () => {
    server = await startImageServer();
    const t = (name: string): ImageTarget => ({ sig: sigOf(`disk-${name}`), kind: 'products' });
    const [adopted, corrupt, lost, fresh] = [t('adopted'), t('corrupt'), t('lost'), t('fresh')];
    const targets = [adopted, corrupt, lost, fresh];
    await downloadImages([lost], options());
    await rm(file(lost)); // the manifest says ok, the file is gone

    const paths = workdirPaths(workdir);
    await mkdir(paths.images('products'), { recursive: true });
    await writeFile(file(adopted), await server.image(adopted.sig)); // renamed, then killed before its manifest line
    await writeFile(file(corrupt), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])); // not a whole JPEG
    const exited = spawnSync(process.execPath, ['-e', '']).pid; // the temp file of a run that is gone
    const stale = tempPathFor(file(fresh)).replace(`.${process.pid}.`, `.${exited}.`);
    await writeFile(stale, 'half an image');
    await appendFile(paths.imageManifest, '{"sig":"0123', 'utf8'); // torn by a kill

    const summary = await downloadImages(targets, options());

    expect(server.count(adopted.sig)).toBe(0);
    expect(server.count(corrupt.sig)).toBe(1);
    expect(server.count(lost.sig)).toBe(2);
    expect(server.count(fresh.sig)).toBe(1);
    expect(summary.adopted).toBe(1);
    expect(summary.removedInvalid).toBe(1);
    expect(summary.tempFilesRemoved).toBe(1);
    expect(summary.tornManifestBytes).toBe('{"sig":"0123'.length);
    expect(summary.state.ok).toBe(4);
    expect(existsSync(stale)).toBe(false);
    const lines = await manifestLines(workdir); // every line parses: the torn one was cut, not continued
    expect(lines.find((r) => r.sig === adopted.sig)).toMatchObject({
      status: 'ok',
      attempts: 0,
      reason: 'adopted file on disk',
    });
    for (const target of targets) await sharp(file(target)).raw().toBuffer();
  });

  it('stops gracefully: nothing new is scheduled, in-flight requests finish and are recorded, the rest stays pending', async () => {
    server = await startImageServer({ delayMs: 150 });
    const targets: ImageTarget[] = Array.from({ length: 40 }, (_, i) => ({ sig: sigOf(`stop-${i}`), kind: 'scenes' }));
    const stop = new AbortController();
    const poll = setInterval(() => server.total() >= 6 && stop.abort(), 5);

    const summary = await downloadImages(targets, options({ stop: stop.signal }));
    clearInterval(poll);

    expect(summary.stopped).toBe(true);
    expect(summary.pending).toBeGreaterThan(0);
    const records = await finalRecords(workdir);
    // Every request the host received was answered within the grace period and recorded as ok.
    expect(records.size).toBe(server.total());
    expect(summary.results.ok).toBe(server.total());
    for (const [sig, record] of records) {
      expect(record.status).toBe('ok');
      expect(existsSync(workdirPaths(workdir).imageFile('scenes', sig))).toBe(true);
    }
    expect(await tempFiles(workdir)).toEqual([]);
  });
});
