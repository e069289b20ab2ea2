// One attempt at one image: GET, check the answer, stream the body to a temp file beside the destination,
// validate it, rename it into place. The destination only ever receives a complete, valid image.
import type { FileHandle } from 'node:fs/promises';
import { open, rename, rm } from 'node:fs/promises';
import { request, type Dispatcher } from 'undici';
import { tempPathFor } from '../util/atomic.js';
import { RunError } from '../util/errors.js';
import { parseRetryAfter } from './retry.js';
import {
  InvalidImage,
  SNIFF_BYTES,
  checkContentType,
  checkDecodes,
  checkEnd,
  checkHead,
  type ImageFormat,
  type ValidationMode,
} from './validate.js';

export type AttemptOutcome =
  | { type: 'ok'; http: number; bytes: number; format: ImageFormat }
  /** Worth asking again (timeouts, resets, 5xx, 429); `throttled`: the host asked us to slow down. */
  | { type: 'retry'; reason: string; http?: number; retryAfterMs?: number; throttled: boolean }
  /** Asking again in this run would not help. */
  | { type: 'final'; status: 'missing' | 'invalid' | 'failed'; reason: string; http?: number; permanent: boolean }
  /** The run is stopping: nothing to record, the next run asks again. */
  | { type: 'aborted' };

export interface AttemptContext {
  dispatcher: Dispatcher;
  maxBytes: number;
  validation: ValidationMode;
  /** Longest a whole attempt may take (the idle timeouts live in the dispatcher). */
  deadlineMs: number;
  /** Aborted when the run stops for good (after the grace period). */
  hardStop: AbortSignal;
}

const USER_AGENT = 'ctl-download/0.1 (complete-the-look; resumable image fetcher)';

export async function fetchImageOnce(url: string, dest: string, ctx: AttemptContext): Promise<AttemptOutcome> {
  // One controller per attempt, aborted by the deadline or the run's hard stop. (AbortSignal.any would tie every
  // attempt's signal to the long-lived stop signal, which Node 20 keeps track of at a cost that grows per call.)
  const controller = new AbortController();
  const deadline = setTimeout(() => controller.abort(new DeadlineExceeded()), ctx.deadlineMs);
  const stop = () => controller.abort();
  ctx.hardStop.addEventListener('abort', stop, { once: true });
  try {
    return await attempt(url, dest, ctx, controller.signal);
  } finally {
    clearTimeout(deadline);
    ctx.hardStop.removeEventListener('abort', stop);
  }
}

class DeadlineExceeded extends Error {
  constructor() {
    super('attempt deadline exceeded');
    this.name = 'DeadlineExceeded';
  }
}

async function attempt(url: string, dest: string, ctx: AttemptContext, signal: AbortSignal): Promise<AttemptOutcome> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      dispatcher: ctx.dispatcher,
      signal,
      headers: { 'user-agent': USER_AGENT, accept: 'image/webp,image/png,image/jpeg,image/gif,image/*;q=0.8' },
    });
  } catch (err) {
    return ctx.hardStop.aborted ? { type: 'aborted' } : { type: 'retry', reason: failureReason(err, signal), throttled: false };
  }
  const http = response.statusCode;
  if (http !== 200) {
    await discard(response.body);
    return answerFor(http, response.headers['retry-after']);
  }
  try {
    checkContentType(response.headers['content-type'] as string | undefined);
    const declared = Number(response.headers['content-length'] ?? NaN);
    if (declared > ctx.maxBytes) throw new InvalidImage(`too large (> ${ctx.maxBytes} bytes)`);
    const { bytes, format } = await streamToFile(response.body, dest, ctx.maxBytes, ctx.validation);
    if (Number.isFinite(declared) && bytes !== declared) {
      return { type: 'retry', reason: 'truncated body (content-length mismatch)', http, throttled: false };
    }
    return { type: 'ok', http, bytes, format };
  } catch (err) {
    await discard(response.body);
    if (err instanceof InvalidImage) return { type: 'final', status: 'invalid', reason: err.reason, http, permanent: true };
    if (err instanceof RunError) throw err;
    return ctx.hardStop.aborted ? { type: 'aborted' } : { type: 'retry', reason: failureReason(err, signal), http, throttled: false };
  }
}

/** What a non-200 status means for this image. */
function answerFor(http: number, retryAfter: string | string[] | undefined): AttemptOutcome {
  if (http === 404 || http === 410) return { type: 'final', status: 'missing', reason: `http ${http}`, http, permanent: true };
  if (http === 429 || http === 503) {
    return { type: 'retry', reason: `http ${http}`, http, retryAfterMs: parseRetryAfter(retryAfter), throttled: true };
  }
  if (http === 408 || http === 425 || http >= 500) return { type: 'retry', reason: `http ${http}`, http, throttled: false };
  // 403 and the other 4xx: the host will not serve it. 1xx/2xx/3xx left here (e.g. a redirect loop): odd, not
  // retried in this run, asked again on the next.
  const permanent = http >= 400 && http < 500;
  return { type: 'final', status: 'failed', reason: `http ${http}`, http, permanent };
}

/**
 * Stream a 200 body to a temp file beside `dest`, check it, rename it onto `dest`. The first bytes are checked
 * before any file is created, so an HTML page or an empty body never touches the disk. Throws InvalidImage for
 * a body we refuse, RunError when the disk fails, and the network error as is.
 */
async function streamToFile(
  body: AsyncIterable<Buffer>,
  dest: string,
  maxBytes: number,
  validation: ValidationMode,
): Promise<{ bytes: number; format: ImageFormat }> {
  const tmp = tempPathFor(dest);
  let file: FileHandle | undefined;
  let format: ImageFormat | undefined;
  let head: Buffer[] = [];
  let first: Buffer = Buffer.alloc(0);
  let tail: Buffer = Buffer.alloc(0);
  let bytes = 0;
  const start = async () => {
    first = Buffer.concat(head);
    head = [];
    format = checkHead(first);
    file = await disk(tmp, () => open(tmp, 'w'));
    await disk(tmp, () => file!.write(first));
  };
  let renamed = false;
  try {
    for await (const chunk of body) {
      bytes += chunk.length;
      if (bytes > maxBytes) throw new InvalidImage(`too large (> ${maxBytes} bytes)`);
      tail = chunk.length >= SNIFF_BYTES ? chunk.subarray(-SNIFF_BYTES) : Buffer.concat([tail, chunk]).subarray(-SNIFF_BYTES);
      if (file) {
        await disk(tmp, () => file!.write(chunk));
        continue;
      }
      head.push(chunk);
      if (bytes >= SNIFF_BYTES) await start();
    }
    if (!file) await start();
    await disk(tmp, () => file!.close());
    file = undefined;
    if (validation === 'full') await checkDecodes(tmp);
    else checkEnd(format!, first, tail, bytes);
    await disk(dest, () => rename(tmp, dest));
    renamed = true;
    return { bytes, format: format! };
  } finally {
    await file?.close().catch(() => undefined);
    if (!renamed) await rm(tmp, { force: true });
  }
}

/** Run a file-system step; its failure (disk full, no permission) stops the whole run, not just this image. */
async function disk<T>(path: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw new RunError(`cannot write ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Read and drop a small unwanted body so the connection goes back to the pool; drop the connection otherwise. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  if (body.destroyed) return;
  body.on('error', () => undefined); // a destroyed body reports its abort as an error event: expected here
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    body.destroy();
  }
}

/** A short, stable reason for a transport failure (stable so the summary can count them). */
function failureReason(err: unknown, signal: AbortSignal): string {
  if (signal.reason instanceof DeadlineExceeded) return signal.reason.message;
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  switch (e.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect timeout';
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'headers timeout';
    case 'UND_ERR_BODY_TIMEOUT':
      return 'body timeout';
    case 'UND_ERR_SOCKET':
      return 'connection closed mid-response';
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return 'truncated body (content-length mismatch)';
  }
  return e.code ?? e.cause?.code ?? e.message ?? String(err);
}
