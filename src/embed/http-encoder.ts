// The http provider: a remote embedding service, as the reference project used. Each image is one POST:
//   --api-send bytes  body = the image file as it is (JPEG, PNG, WebP or GIF: Content-Type by its first bytes),
//                     or the scene re-encoded as JPEG when the product is hidden
//   --api-send url    body = {"url": "<image host>/400x/ab/cd/ef/<sig>.jpg"}, Content-Type application/json
// and the answer is JSON {"embedding": [numbers]}. Requests run `concurrency` at a time; network errors (a body cut
// or timed out midway too), 429 and 5xx are retried after the server's Retry-After, else with exponential backoff
// and jitter; every vector must have the same dimension, and as float32 finite values and a norm above 0.
import pLimit from 'p-limit';
import { sniffFormat } from '../data/image-format.js';
import { imageUrl } from '../data/image-host.js';
import { InputError, RunError } from '../util/errors.js';
import { l2NormalizeRows } from '../util/matrix.js';
import { describeNetworkError } from '../util/network-error.js';
import type { Encoder, PreparedBase } from './encoder.js';
import { decodeRgb, encodeJpeg, ImageProblem, loadJobImage, readImageFile, type ImageJob } from './images.js';
import {
  isTransientStatus,
  MAX_BACKOFF_MS,
  parseRetryAfter,
  retryDelay,
  sleep,
  type BackoffPolicy,
} from '../util/retry.js';

export interface HttpEncoderOptions {
  apiUrl: string;
  send: 'bytes' | 'url';
  /** Base URL of the image host, for `send: 'url'`. */
  imageBaseUrl: string;
  concurrency: number;
  retries: number;
  timeoutMs: number;
  /** Expected dimension; else the first answer sets it (the store checks it on commit). */
  dim?: number;
  /** Model id recorded in the store. */
  model: string;
  revision?: string;
  /** First retry waits this long, then doubles. */
  retryDelayMs?: number;
}

interface PreparedRequest extends PreparedBase {
  body: Uint8Array<ArrayBuffer> | string;
  contentType: string;
}

export function httpEncoder(opts: HttpEncoderOptions): Encoder<PreparedRequest> {
  let url: URL;
  try {
    url = new URL(opts.apiUrl);
  } catch {
    throw new InputError(`--api-url: ${JSON.stringify(opts.apiUrl)} is not a URL`);
  }
  const limit = pLimit(opts.concurrency);
  // Retry-After capped like the backoff: a stopped run waits out the retry in flight before it commits.
  const backoff: BackoffPolicy = {
    baseMs: opts.retryDelayMs ?? 250,
    maxMs: MAX_BACKOFF_MS,
    retryAfterMaxMs: MAX_BACKOFF_MS,
  };
  let dim = opts.dim;

  /**
   * One image's vector; an ImageProblem when the service refuses the image (4xx) or retries are spent; RunError when
   * the answer is not an embedding.
   */
  async function post(item: PreparedRequest, job: ImageJob): Promise<Float32Array | ImageProblem> {
    let last = '';
    let retryAfterMs: number | undefined;
    for (let attempt = 0; attempt <= opts.retries; attempt++) {
      if (attempt > 0) await sleep(retryDelay(attempt, retryAfterMs, backoff));
      retryAfterMs = undefined;
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': item.contentType, accept: 'application/json' },
          body: item.body,
          signal: AbortSignal.timeout(opts.timeoutMs),
        });
        text = await res.text();
      } catch (err) {
        last =
          (err as Error).name === 'TimeoutError'
            ? `no complete answer from ${opts.apiUrl} within ${opts.timeoutMs / 1000} s (--timeout)`
            : `network error reaching ${opts.apiUrl}: ${describeNetworkError(err)}`;
        continue;
      }
      if (isTransientStatus(res.status)) {
        last = `HTTP ${res.status} ${text.slice(0, 120)}`.trim();
        retryAfterMs = parseRetryAfter(res.headers.get('retry-after') ?? undefined);
        continue;
      }
      if (!res.ok) return new ImageProblem('refused', `HTTP ${res.status} ${text.slice(0, 120)}`.trim());
      let embedding: unknown;
      try {
        embedding = (JSON.parse(text) as { embedding?: unknown }).embedding;
      } catch {
        embedding = undefined;
      }
      if (
        !Array.isArray(embedding) ||
        embedding.length === 0 ||
        !embedding.every((v) => typeof v === 'number' && Number.isFinite(v))
      )
        throw new RunError(
          `${opts.apiUrl}: answered ${JSON.stringify(text.slice(0, 80))} for ${job.id}; expected JSON {"embedding": [numbers]}`,
        );
      if (dim === undefined) dim = embedding.length;
      if (embedding.length !== dim)
        throw new RunError(
          `${opts.apiUrl}: a ${embedding.length}-d embedding for ${job.id}, but the others (or --api-dim) are ${dim}-d`,
        );
      // Checked as float32, as stored: a finite 1e200 becomes Infinity (NaN once normalised); a zero vector has no
      // direction (values below 1e-45 become 0 too).
      const vector = Float32Array.from(embedding as number[]);
      const huge = vector.findIndex((v) => !Number.isFinite(v));
      if (huge >= 0)
        throw new RunError(
          `${opts.apiUrl}: embedding[${huge}] = ${embedding[huge]} for ${job.id} is not representable as float32`,
        );
      if (vector.every((v) => v === 0))
        throw new RunError(`${opts.apiUrl}: an embedding of norm 0 (as float32) for ${job.id}: it has no direction`);
      return l2NormalizeRows(vector, dim);
    }
    const attempts = opts.retries + 1;
    return new ImageProblem('service', `${last} (after ${attempts} attempt${attempts === 1 ? '' : 's'})`);
  }

  return {
    model: opts.model,
    revision: opts.revision,
    device: `http ${url.origin}`,
    preprocessing: { provider: 'http', api: url.origin + url.pathname, send: opts.send },

    async prepare(job: ImageJob): Promise<PreparedRequest> {
      if (opts.send === 'url') {
        if (job.hide)
          throw new InputError(
            '--api-send url cannot hide a product (the service fetches the whole image); use --api-send bytes',
          );
        return {
          body: JSON.stringify({ url: imageUrl(opts.imageBaseUrl, job.sig) }),
          contentType: 'application/json',
          fellBack: false,
        };
      }
      if (job.hide) {
        const { image, fellBack } = await loadJobImage(job);
        return { body: new Uint8Array(await encodeJpeg(image)), contentType: 'image/jpeg', fellBack };
      }
      const bytes = await readImageFile(job.file);
      await decodeRgb(bytes); // an undecodable file is skipped here, not sent
      // The download keeps every format under a .jpg name: the bytes say which it is.
      const format = sniffFormat(bytes);
      const contentType = format ? `image/${format}` : 'application/octet-stream';
      return { body: new Uint8Array(bytes), contentType, fellBack: false };
    },

    embed(batch: PreparedRequest[], jobs: ImageJob[]) {
      return Promise.all(batch.map((item, i) => limit(() => post(item, jobs[i]))));
    },

    async dispose() {},
  };
}
