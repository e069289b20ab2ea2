// When to ask again: exponential backoff with full jitter, or the server's Retry-After when it gives one. Shared by
// every HTTP client of the pipeline (metadata fetch, image download, embedding service).

export interface BackoffPolicy {
  /** Delay scale of the first retry, ms. */
  baseMs: number;
  /** Largest backoff delay, ms. */
  maxMs: number;
  /** Largest Retry-After honoured, ms (a server asking for hours is treated as asking for this). */
  retryAfterMaxMs: number;
}

/** The longest wait between tries, and the longest Retry-After honoured, unless a client has reason for another. */
export const MAX_BACKOFF_MS = 30_000;
export const MAX_RETRY_AFTER_MS = 300_000;

/** Statuses worth asking again: a timeout, throttling (429), too early (425), or the server's own error (5xx). */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * Full jitter ("Exponential Backoff And Jitter", AWS architecture blog): uniform in [0, min(max, base * 2^(n-1)))
 * for retry n = 1, 2, ... Spreads the retries of many requests that failed together.
 */
export function backoffDelay(
  retry: number,
  policy: Pick<BackoffPolicy, 'baseMs' | 'maxMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/** A Retry-After header (delay in seconds, or an HTTP date) as ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The wait before retry n: the server's Retry-After (capped) when it sent one, else backoff with jitter. */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  policy: BackoffPolicy,
  random?: () => number,
): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.retryAfterMaxMs);
  return backoffDelay(retry, policy, random);
}

/** Sleep `ms`, or less when `signal` aborts (then resolves false). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
