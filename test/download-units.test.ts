// The download stage's small rules: format sniffing, backoff, Retry-After, AIMD, the manifest, shards, URLs.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { inShard, shardOf } from '../src/data/shard.js';
import { Aimd } from '../src/download/aimd.js';
import { ManifestWriter, readManifest, type ManifestRecord } from '../src/download/manifest.js';
import { backoffDelay, parseRetryAfter, retryDelay } from '../src/util/retry.js';
import { imageUrl } from '../src/data/image-host.js';
import { selectTargets } from '../src/download/targets.js';
import { sniffFormat } from '../src/data/image-format.js';
import { checkContentType, checkEnd, checkHead, InvalidImage, validateImageFile } from '../src/download/validate.js';
import { sigOf } from './download-fixtures.js';

describe('validation of the first bytes', () => {
  it('recognises JPEG, PNG, WebP and GIF made by sharp', async () => {
    const base = sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 10, b: 10 } } });
    expect(sniffFormat(await base.clone().jpeg().toBuffer())).toBe('jpeg');
    expect(sniffFormat(await base.clone().png().toBuffer())).toBe('png');
    expect(sniffFormat(await base.clone().webp().toBuffer())).toBe('webp');
    expect(sniffFormat(await base.clone().gif().toBuffer())).toBe('gif');
    expect(sniffFormat(Buffer.from('II*\0 a tiff'))).toBeUndefined();
  });

  it('finds the end marker of whole JPEG, PNG, WebP and GIF files and misses it in cut ones', async () => {
    const base = sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10, g: 200, b: 10 } } });
    for (const format of ['jpeg', 'png', 'webp', 'gif'] as const) {
      const whole = await base.clone().toFormat(format).toBuffer();
      expect(() => checkEnd(format, whole.subarray(0, 16), whole.subarray(-16), whole.length), format).not.toThrow();
      // Cut inside the end marker, and just after it (PNG: in IEND's checksum).
      for (const missing of [7, 2]) {
        const cut = whole.subarray(0, whole.length - missing);
        expect(() => checkEnd(format, cut.subarray(0, 16), cut.subarray(-16), cut.length), format).toThrow(
          `truncated ${format}`,
        );
      }
    }
  });

  it('refuses a file on disk above the size cap, keeps one at it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-validate-'));
    try {
      const path = join(dir, 'image.png');
      const data = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } })
        .png()
        .toBuffer();
      await writeFile(path, data);
      await expect(validateImageFile(path, data.length)).resolves.toEqual({ format: 'png', bytes: data.length });
      await expect(validateImageFile(path, data.length - 1)).rejects.toThrow(`too large (> ${data.length - 1} bytes)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names why a body is refused', () => {
    const reason = (head: string | Buffer) => {
      try {
        checkHead(Buffer.from(head));
        return 'accepted';
      } catch (err) {
        return (err as InvalidImage).reason;
      }
    };
    expect(reason('')).toBe('empty body');
    expect(reason('  <!DOCTYPE html><html>')).toBe('html page');
    expect(reason('<html><head>')).toBe('html page');
    expect(reason('{"error":"nope"}')).toBe('not an image (unknown magic bytes)');
    expect(reason(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('accepted');
  });

  it('accepts image and generic binary content types only', () => {
    expect(() => checkContentType('image/jpeg')).not.toThrow();
    expect(() => checkContentType('image/webp; charset=binary')).not.toThrow();
    expect(() => checkContentType('application/octet-stream')).not.toThrow();
    expect(() => checkContentType('text/html; charset=utf-8')).toThrow('html page (content-type text/html)');
    expect(() => checkContentType('application/json')).toThrow('content-type application/json');
    expect(() => checkContentType(undefined)).toThrow('content-type missing');
  });
});

describe('retry timing', () => {
  const policy = { baseMs: 100, maxMs: 1_000, retryAfterMaxMs: 60_000 };

  it('backs off exponentially with full jitter, capped', () => {
    expect(backoffDelay(1, policy, () => 0)).toBe(0);
    expect(backoffDelay(1, policy, () => 0.999)).toBe(99);
    expect(backoffDelay(3, policy, () => 0.999)).toBe(399);
    expect(backoffDelay(10, policy, () => 0.999)).toBe(999);
    const samples = Array.from({ length: 200 }, () => backoffDelay(3, policy));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThan(400);
    expect(new Set(samples).size).toBeGreaterThan(20); // jittered, not a constant
  });

  it('reads Retry-After as seconds or as an HTTP date, and prefers it to backoff', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3_000);
    expect(parseRetryAfter('0.5', now)).toBe(500);
    expect(parseRetryAfter('Wed, 01 May 2024 12:00:07 GMT', now)).toBe(7_000);
    expect(parseRetryAfter('Wed, 01 May 2024 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(retryDelay(1, 2_500, policy, () => 0)).toBe(2_500);
    expect(retryDelay(1, 3_600_000, policy)).toBe(60_000);
    expect(retryDelay(2, undefined, policy, () => 0.5)).toBe(100);
  });
});

describe('AIMD concurrency', () => {
  it('halves once per round of throttled requests and climbs back one slot per window of successes', () => {
    const limiter = { concurrency: 0 };
    const aimd = new Aimd(limiter, 16);
    expect(limiter.concurrency).toBe(16);
    const before = aimd.started();
    aimd.throttled(before);
    expect(limiter.concurrency).toBe(8);
    for (let i = 0; i < 15; i++) aimd.throttled(before); // the rest of the burst already in flight
    expect(limiter.concurrency).toBe(8);
    aimd.throttled(aimd.started()); // a request sent after the decrease is throttled too
    expect(limiter.concurrency).toBe(4);
    for (let i = 0; i < 4; i++) aimd.succeeded();
    expect(limiter.concurrency).toBe(5);
    for (let i = 0; i < 1000; i++) aimd.succeeded();
    expect(limiter.concurrency).toBe(16);
    expect(aimd.min).toBe(4);
  });

  it('never goes below one slot, and a refusal starts the window of successes over', () => {
    const limiter = { concurrency: 0 };
    const low = new Aimd(limiter, 2);
    for (let i = 0; i < 3; i++) low.throttled(low.started());
    expect(limiter.concurrency).toBe(1); // p-limit refuses 0: the downloads would stop for good

    const aimd = new Aimd(limiter, 4);
    const before = aimd.started();
    aimd.throttled(before); // 4 → 2
    aimd.succeeded(); // one of a window of two
    aimd.throttled(before); // the same burst's refusal: no decrease, but the host is still refusing
    aimd.succeeded();
    expect(limiter.concurrency).toBe(2);
    aimd.succeeded();
    expect(limiter.concurrency).toBe(3);
  });
});

describe('manifest', () => {
  const record = (sig: string, status: ManifestRecord['status']): ManifestRecord => ({
    sig,
    kind: 'scenes',
    status,
    attempts: 1,
    bytes: 10,
    ms: 1,
    at: '2024-01-01T00:00:00.000Z',
  });

  it('keeps the last record per image, skips a torn last line (the writer cuts it), rejects a corrupt middle line with its location', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-manifest-'));
    const path = join(dir, 'manifest.jsonl');
    try {
      expect((await readManifest(path)).latest.size).toBe(0);
      const writer = await ManifestWriter.open(path);
      writer.append(record('a', 'failed'));
      writer.append(record('b', 'ok'));
      writer.append(record('a', 'ok'));
      await writer.close();
      await writeFile(path, (await readFile(path, 'utf8')) + '{"sig":"c","ki');

      const { latest, end, tornBytes } = await readManifest(path);
      expect(tornBytes).toBe('{"sig":"c","ki'.length);
      expect(latest.get('scenes/a')?.status).toBe('ok');
      expect(latest.size).toBe(2);
      expect((await readFile(path, 'utf8')).endsWith('"ki')).toBe(true); // reading changes nothing
      const appender = await ManifestWriter.open(path, { end, tornBytes });
      appender.append(record('c', 'ok'));
      await appender.close();
      expect((await readManifest(path)).latest.size).toBe(3);

      // Grown since it was read (another writer appended): nothing is cut, so nothing of theirs is lost.
      await writeFile(path, (await readFile(path, 'utf8')) + '{"sig":"d","ki');
      const torn = await readManifest(path);
      await writeFile(path, (await readFile(path, 'utf8')) + JSON.stringify(record('e', 'ok')) + '\n');
      const grown = await readFile(path, 'utf8');
      await (await ManifestWriter.open(path, torn)).close();
      expect(await readFile(path, 'utf8')).toBe(grown);

      await writeFile(
        path,
        JSON.stringify(record('a', 'ok')) + '\nnot json\n' + JSON.stringify(record('b', 'ok')) + '\n',
      );
      await expect(readManifest(path)).rejects.toThrow(`${path}:2: line:`);
      await writeFile(path, JSON.stringify({ ...record('a', 'ok'), status: 'done' }) + '\n');
      await expect(readManifest(path)).rejects.toThrow(`${path}:1: status: one of ok, missing, invalid, failed`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('shards and targets', () => {
  const sigs = Array.from({ length: 4000 }, (_, i) => sigOf(`s${i}`));

  it('puts every signature in exactly one shard, evenly, independent of order', () => {
    const count = 4;
    const sizes = new Array(count).fill(0);
    const misplaced = sigs.filter((sig) => {
      const owners = [0, 1, 2, 3].filter((index) => inShard(sig, { index, count }));
      sizes[owners[0]]++;
      return owners.length !== 1 || owners[0] !== shardOf(sig, count);
    });
    expect(misplaced).toEqual([]);
    for (const size of sizes) expect(Math.abs(size - 1000)).toBeLessThan(150);
    expect(inShard(sigs[0])).toBe(true);
    expect(shardOf('0123456789abcdef0123456789abcdef', 7)).toBe(shardOf('0123456789abcdef0123456789abcdef', 7));
  });

  it('selects by kind, shard and limit, scenes first', () => {
    const dataset = {
      scenes: sigs.slice(0, 10).map((sig) => ({ sig, items: [] })),
      products: sigs.slice(10, 30).map((sig) => ({ sig, category: 0 })),
    };
    expect(selectTargets(dataset, { kind: 'all' }).length).toBe(30);
    expect(selectTargets(dataset, { kind: 'all' })[0]).toEqual({ sig: sigs[0], kind: 'scenes' });
    expect(selectTargets(dataset, { kind: 'products' }).every((t) => t.kind === 'products')).toBe(true);
    expect(
      selectTargets(dataset, { kind: 'all', limit: 12 })
        .map((t) => t.kind)
        .filter((k) => k === 'products').length,
    ).toBe(2);
    const shard = { index: 1, count: 3 };
    expect(selectTargets(dataset, { kind: 'all', shard }).every((t) => inShard(t.sig, shard))).toBe(true);
  });

  it('builds the Pinterest URL layout under the base URL', () => {
    const sig = 'abcdef0123456789abcdef0123456789';
    expect(imageUrl('http://i.pinimg.com', sig)).toBe(`http://i.pinimg.com/400x/ab/cd/ef/${sig}.jpg`);
    expect(imageUrl('http://127.0.0.1:8080/mirror/', sig)).toBe(
      `http://127.0.0.1:8080/mirror/400x/ab/cd/ef/${sig}.jpg`,
    );
  });
});
