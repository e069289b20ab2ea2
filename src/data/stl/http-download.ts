// Download one URL to a local file with undici: redirects (at most 5), timeouts, retries after the server's
// Retry-After or with exponential backoff on transient failures (network errors, timeouts, 5xx, 429, a body shorter
// than its Content-Length), and a complete-or-nothing result: the bytes go to the given path only when the whole body
// arrived, else the path is removed.
import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { cannotWrite, InputError, RunError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { Progress } from '../../util/progress.js';
import { describeNetworkError } from '../../util/network-error.js';
import { isRedirect, redirectTarget } from '../../util/redirect.js';
import {
  isTransientStatus,
  MAX_BACKOFF_MS,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  retryDelay,
  sleep,
} from '../../util/retry.js';

export interface FileDownloadOptions {
  /** Seconds to wait for the connection, the headers, and between body chunks. */
  timeoutS?: number;
  /** Extra attempts after the first one fails with a transient error. */
  retries?: number;
  /** Wait before the first retry; doubles on each further one. */
  backoffMs?: number;
  /** Label of the progress line (default: the URL). */
  label?: string;
}

export interface Downloaded {
  url: string;
  bytes: number;
  /** Hex sha256 of the bytes written. */
  sha256: string;
  attempts: number;
}

/**
 * The body stream's buffer limit, above any metadata file, so undici never pauses its HTTP/1 parser for
 * backpressure: a server that closes the connection right after the body while the parser is paused makes
 * undici 7 fail an internal assertion that no caller can catch (fixed in undici 8, which needs Node >= 22.19).
 * The file write keeps up in practice; at worst the file's bytes wait in memory.
 */
const NEVER_PAUSE_BYTES = 2 ** 30;

/** A failure worth retrying (the server or the network), as opposed to a wrong URL. */
class TransientError extends Error {
  constructor(
    message: string,
    /** The server's Retry-After, ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export async function downloadFile(url: string, path: string, options: FileDownloadOptions = {}): Promise<Downloaded> {
  const { timeoutS = 60, retries = 3, backoffMs = 500 } = options;
  const timeoutMs = timeoutS * 1000;
  const agent = new Agent({ connectTimeout: timeoutMs, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const { bytes, sha256 } = await attemptDownload(url, path, agent, options.label ?? url);
        return { url, bytes, sha256, attempts: attempt };
      } catch (err) {
        await rm(path, { force: true });
        if (!(err instanceof TransientError)) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        if (attempt > retries) throw new RunError(`download of ${url} failed after ${attempt} attempt(s): ${reason}`);
        const wait = retryDelay(attempt, err.retryAfterMs, {
          baseMs: backoffMs,
          maxMs: MAX_BACKOFF_MS,
          retryAfterMaxMs: MAX_RETRY_AFTER_MS,
        });
        log(`${url}: ${reason}; retrying in ${(wait / 1000).toFixed(1)}s (${attempt}/${retries})`);
        await sleep(wait);
      }
    }
  } finally {
    await agent.close();
  }
}

async function attemptDownload(
  url: string,
  path: string,
  dispatcher: Agent,
  label: string,
): Promise<{ bytes: number; sha256: string }> {
  const { response, finalUrl } = await getFollowingRedirects(url, dispatcher);
  const { statusCode, headers, body } = response;
  if (statusCode !== 200) {
    await body.dump();
    const message = `HTTP ${statusCode} for ${finalUrl}${finalUrl === url ? '' : ` (redirected from ${url})`}`;
    if (isTransientStatus(statusCode)) throw new TransientError(message, parseRetryAfter(headers['retry-after']));
    throw new InputError(`${message} (check --base-url and --domain)`);
  }
  const lengthHeader = headers['content-length'];
  const expected = typeof lengthHeader === 'string' ? Number(lengthHeader) : undefined;
  const progress = new Progress(label, expected, { unit: 'B' });
  let received = 0;
  const digest = createHash('sha256');
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      digest.update(chunk);
      progress.tick(chunk.length);
      done(null, chunk);
    },
  });
  // Opened before the body flows, so a file that cannot be opened surfaces as itself rather than as a network retry.
  let file: FileHandle;
  try {
    file = await open(path, 'w');
  } catch (err) {
    await body.dump(); // not destroy(): that emits an error event with no listener, which crashes the process
    throw cannotWrite(path, err);
  }
  try {
    await pipeline(body, count, fileSink(file, path));
  } catch (err) {
    if (err instanceof RunError) throw err; // the file's, from fileSink
    const got = expected !== undefined ? ` after ${received} of ${expected} bytes` : ` after ${received} bytes`;
    throw new TransientError(`body incomplete${got}: ${describeNetworkError(err)}`);
  } finally {
    await file.close();
  }
  if (expected !== undefined && received !== expected)
    throw new TransientError(`body incomplete: got ${received} of ${expected} bytes`);
  progress.finish();
  return { bytes: received, sha256: digest.digest('hex') };
}

/** Redirects followed from a URL to its file. */
const MAX_REDIRECTS = 5;

/**
 * GET `url`, following its redirects: the first response that is not one, and its URL. A redirect loop, a longer
 * chain than MAX_REDIRECTS or a Location that is no http(s) URL is an InputError (asking again will not help); a
 * network failure is transient.
 */
async function getFollowingRedirects(
  url: string,
  dispatcher: Agent,
): Promise<{ response: Dispatcher.ResponseData; finalUrl: string }> {
  const visited = new Set<string>();
  let target = url;
  for (;;) {
    visited.add(target);
    let response: Dispatcher.ResponseData;
    try {
      response = await request(target, { method: 'GET', dispatcher, highWaterMark: NEVER_PAUSE_BYTES });
    } catch (err) {
      throw new TransientError(describeNetworkError(err));
    }
    const { location } = response.headers;
    if (!isRedirect(response.statusCode) || typeof location !== 'string') return { response, finalUrl: target };
    await response.body.dump();
    const next = redirectTarget(location, target);
    if (next === undefined) throw new InputError(`${target} redirects to ${location}, which is no http(s) URL`);
    target = next;
    if (visited.has(target)) throw new InputError(`redirect loop from ${url}: back to ${target}`);
    if (visited.size > MAX_REDIRECTS)
      throw new InputError(`too many redirects (more than ${MAX_REDIRECTS}) from ${url}`);
  }
}

/**
 * Where the body goes: `file`, fsynced at the end so that a completed download survives a crash right after the
 * rename. Its failures are cannotWrite's: a full disk or a file-size limit is no network failure to retry.
 */
function fileSink(file: FileHandle, path: string): Writable {
  const failed = (done: (err: Error) => void) => (err: unknown) => done(cannotWrite(path, err));
  return new Writable({
    // writeFile, not write: one write may take only part of a chunk (a nearly full disk); writeFile goes on until
    // all of it is out or the disk refuses (ENOSPC).
    write(chunk: Buffer, _encoding, done) {
      file.writeFile(chunk).then(() => done(), failed(done));
    },
    final(done) {
      file.sync().then(() => done(), failed(done));
    },
  });
}
