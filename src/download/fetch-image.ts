// One attempt at one image: GET it through undici's dispatch handler API (status, headers and body chunks as
// callbacks: no response stream per image, a large part of a small request's CPU), check the answer
// and the body's first bytes as they come, then hand the body to the saver, which validates it and writes it into
// place. The destination only ever receives a complete, valid image.
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { RunError } from '../util/errors.js';
import { isRedirect, redirectTarget } from '../util/redirect.js';
import { isTransientStatus, parseRetryAfter } from '../util/retry.js';
import type { ImageSaver } from './save-image.js';
import { InvalidImage, SNIFF_BYTES, checkContentType, checkHead, type ValidationMode } from './validate.js';
import type { ImageFormat } from '../data/image-format.js';

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
  /**
   * Runs the network part of an attempt (the request and its body) once one of the host's slots is free; resolves
   * to undefined without running it when the run stops meanwhile. The check and the write happen outside the slot.
   */
  hostSlot: <T>(request: () => Promise<T>) => Promise<T | undefined>;
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
  const received = await ctx.hostSlot(() => receiveFollowingRedirects(url, ctx));
  if (!received) return { type: 'aborted' };
  const { http, error } = received;
  if (error instanceof BadRedirect)
    return { type: 'final', status: 'failed', reason: error.message, http, permanent: true };
  if (http !== undefined && http !== 200) return answerFor(http, received.retryAfter); // a redirect here: too many
  if (error instanceof InvalidImage)
    return { type: 'final', status: 'invalid', reason: error.reason, http, permanent: true };
  if (error !== undefined || !received.body) {
    return ctx.hardStop.aborted
      ? { type: 'aborted' }
      : { type: 'retry', reason: failureReason(error), http, throttled: false };
  }
  const { data, format } = received.body;
  if (received.declaredBytes !== undefined && data.length !== received.declaredBytes) {
    return { type: 'retry', reason: 'truncated body (content-length mismatch)', http, throttled: false };
  }
  const bytes = data.length; // read before save: the buffer may move to a worker, leaving it empty here
  try {
    await ctx.saver.save(data, format, dest, ctx.validation);
    return { type: 'ok', http: 200, bytes, format };
  } catch (err) {
    if (err instanceof InvalidImage)
      return { type: 'final', status: 'invalid', reason: err.reason, http, permanent: true };
    if (err instanceof RunError) throw err;
    return ctx.hardStop.aborted
      ? { type: 'aborted' }
      : { type: 'retry', reason: failureReason(err), http, throttled: false };
  }
}

class DeadlineExceeded extends Error {
  constructor() {
    super('attempt deadline exceeded');
    this.name = 'DeadlineExceeded';
  }
}

/** A redirect whose Location is no http(s) URL: the host sends it there every time. */
class BadRedirect extends Error {
  constructor(location: string) {
    super(`bad redirect target '${location}'`);
    this.name = 'BadRedirect';
  }
}

class RunStopped extends Error {
  constructor() {
    super('run stopped');
    this.name = 'RunStopped';
  }
}

/** What a non-200 status means for this image. */
function answerFor(http: number, retryAfter: string | string[] | undefined): AttemptOutcome {
  if (http === 404 || http === 410)
    return { type: 'final', status: 'missing', reason: `http ${http}`, http, permanent: true };
  if (http === 429 || http === 503) {
    return { type: 'retry', reason: `http ${http}`, http, retryAfterMs: parseRetryAfter(retryAfter), throttled: true };
  }
  if (isTransientStatus(http)) return { type: 'retry', reason: `http ${http}`, http, throttled: false };
  // 403 and the other 4xx: the host will not serve it. 1xx/2xx/3xx left here (e.g. a redirect loop): odd, not
  // retried in this run, asked again on the next.
  const permanent = http >= 400 && http < 500;
  return { type: 'final', status: 'failed', reason: `http ${http}`, http, permanent };
}

/** What one GET brought back. */
interface Received {
  /** The status, once the headers came. */
  http?: number;
  retryAfter?: string | string[];
  /** Where a redirect (301, 302, 303, 307, 308) points. */
  location?: string;
  declaredBytes?: number;
  /** A whole 200 body and its format. */
  body?: { data: Buffer; format: ImageFormat };
  /**
   * What cut the exchange short: a network error, a timeout, an abort, InvalidImage for a body we refused, or
   * BadRedirect for a redirect we cannot follow.
   */
  error?: unknown;
}

const REQUEST_HEADERS = { 'user-agent': USER_AGENT, accept: 'image/webp,image/png,image/jpeg,image/gif,image/*;q=0.8' };

/** A non-200 body is read (and dropped) so the connection can serve the next request, unless it is bigger than this. */
const DISCARD_LIMIT = 64 * 1024;

/** Redirects followed in one attempt. */
const MAX_REDIRECTS = 3;

/** GET `url` and the redirects it leads to, all within the attempt's deadline. */
async function receiveFollowingRedirects(url: string, ctx: AttemptContext): Promise<Received> {
  const deadline = performance.now() + ctx.deadlineMs;
  let received = await receive(url, ctx, deadline);
  for (let hops = 0; received.location !== undefined && hops < MAX_REDIRECTS; hops++) {
    const target = redirectTarget(received.location, url);
    if (target === undefined) return { ...received, error: new BadRedirect(received.location) };
    url = target;
    received = await receive(url, ctx, deadline);
  }
  return received;
}

/** GET `url`, cut at `deadline` (performance.now() time) or when the run stops for good; never rejects. */
function receive(url: string, ctx: AttemptContext, deadline: number): Promise<Received> {
  return new Promise((resolve) => {
    const { origin, pathname, search } = new URL(url);
    const receiver = new ImageReceiver(ctx.maxBytes, (received) => {
      clearTimeout(timer);
      ctx.hardStop.removeEventListener('abort', stop);
      resolve(received);
    });
    const timer = setTimeout(() => receiver.abort(new DeadlineExceeded()), deadline - performance.now());
    const stop = () => receiver.abort(new RunStopped());
    ctx.hardStop.addEventListener('abort', stop, { once: true });
    ctx.dispatcher.dispatch({ origin, path: pathname + search, method: 'GET', headers: REQUEST_HEADERS }, receiver);
  });
}

/**
 * Receives one response (undici's DispatchHandler): a 200 body whole, in memory, at most `maxBytes` (memory stays
 * bounded by the images in progress × cap, and the checks and the write see one buffer). The content type, the
 * declared length and the first bytes are checked as soon as they arrive, so an HTML page or a non-image is refused
 * before the rest comes.
 */
class ImageReceiver implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private abortedWith: Error | undefined;
  private readonly received: Received = {};
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private format: ImageFormat | undefined;
  private settled = false;

  constructor(
    private readonly maxBytes: number,
    /** Called once, with what came back. */
    private readonly done: (received: Received) => void,
  ) {}

  abort(reason: Error): void {
    this.abortedWith ??= reason;
    if (this.controller) this.controller.abort(reason);
    else this.settle({ error: reason }); // not started yet (waiting for a connection)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortedWith) controller.abort(this.abortedWith);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // informational (1xx): the response follows
    this.received.http = statusCode;
    this.received.retryAfter = headers['retry-after'];
    const location = headers.location;
    if (isRedirect(statusCode) && typeof location === 'string') this.received.location = location;
    if (statusCode !== 200) return;
    const declared = Number(headers['content-length'] ?? NaN);
    if (Number.isFinite(declared)) this.received.declaredBytes = declared;
    try {
      checkContentType(headers['content-type'] as string | undefined);
      if (declared > this.maxBytes) throw new InvalidImage(`too large (> ${this.maxBytes} bytes)`);
    } catch (err) {
      controller.abort(err as Error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.received.http !== 200) {
      if (this.bytes > DISCARD_LIMIT) controller.abort(new Error('unwanted body too large to drain'));
      return;
    }
    try {
      if (this.bytes > this.maxBytes) throw new InvalidImage(`too large (> ${this.maxBytes} bytes)`);
      this.chunks.push(chunk);
      if (!this.format && this.bytes >= SNIFF_BYTES) this.format = checkHead(this.joined().subarray(0, SNIFF_BYTES));
    } catch (err) {
      controller.abort(err as Error);
    }
  }

  onResponseEnd(): void {
    if (this.received.http !== 200) return this.settle({});
    const data = this.joined();
    let format: ImageFormat;
    try {
      format = this.format ?? checkHead(data); // a body shorter than SNIFF_BYTES is checked only now
    } catch (err) {
      return this.settle({ error: err });
    }
    this.settle({ body: { data, format } });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.settle({ error: this.abortedWith ?? error });
  }

  /** The chunks so far as one buffer (kept as the only chunk). */
  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks.splice(0, this.chunks.length, Buffer.concat(this.chunks, this.bytes));
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private settle(outcome: Pick<Received, 'body' | 'error'>): void {
    if (this.settled) return;
    this.settled = true;
    this.done({ ...this.received, ...outcome });
  }
}

/** A short, stable reason for a transport failure (stable so the summary can count them). */
function failureReason(err: unknown): string {
  if (err instanceof DeadlineExceeded) return err.message;
  if (err === undefined) return 'no response';
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
