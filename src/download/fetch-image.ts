// One attempt at one image: GET, check the answer, receive the body (checking its first bytes as they come), then
// hand it to the saver, which validates it and writes it into place. The destination only ever receives a
// complete, valid image.
import { request, type Dispatcher } from 'undici';
import { RunError } from '../util/errors.js';
import { parseRetryAfter } from '../util/retry.js';
import type { ImageSaver } from './save-image.js';
import { InvalidImage, SNIFF_BYTES, checkContentType, checkHead, type ImageFormat, type ValidationMode } from './validate.js';

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
  saver: ImageSaver;
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
    const { data, format } = await receive(response.body, ctx.maxBytes);
    if (Number.isFinite(declared) && data.length !== declared) {
      return { type: 'retry', reason: 'truncated body (content-length mismatch)', http, throttled: false };
    }
    const bytes = data.length;
    await ctx.saver.save(data, format, dest, ctx.validation);
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
 * Receive a 200 body, whole, in memory (at most `maxBytes`: memory stays bounded by concurrency × cap, and the
 * checks and the write see one buffer). Its first bytes are checked as soon as they arrive, so an HTML page or a
 * non-image is refused before the rest comes. Throws InvalidImage, or the network error as is.
 */
async function receive(body: AsyncIterable<Buffer>, maxBytes: number): Promise<{ data: Buffer; format: ImageFormat }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let format: ImageFormat | undefined;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > maxBytes) throw new InvalidImage(`too large (> ${maxBytes} bytes)`);
    chunks.push(chunk);
    if (!format && bytes >= SNIFF_BYTES) format = checkHead((chunks.length === 1 ? chunk : Buffer.concat(chunks, bytes)).subarray(0, SNIFF_BYTES));
  }
  const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes);
  return { data, format: format ?? checkHead(data) };
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
