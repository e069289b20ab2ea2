// Work through a long list with at most `limit` tasks in progress, each started as a place frees: no queue holds
// the whole list (p-limit would queue every item up front), and a stop starts nothing new.

/**
 * Run `task` on each item, at most `limit` at a time, in order. Once `signal` aborts no new task starts; resolves
 * when every started task has settled. `task` should not reject (a rejection is left to the caller's handling
 * inside it); one that does is reported after the others settle.
 */
export async function forEachBounded<T>(
  items: Iterable<T>,
  limit: number,
  signal: AbortSignal,
  task: (item: T) => Promise<void>,
): Promise<void> {
  const inProgress = new Set<Promise<void>>();
  let wake: () => void = () => undefined;
  const placeFreed = () => new Promise<void>((resolve) => (wake = resolve));
  const onAbort = () => wake();
  signal.addEventListener('abort', onAbort, { once: true });
  let failure: { error: unknown } | undefined;
  try {
    for (const item of items) {
      while (!signal.aborted && inProgress.size >= limit) await placeFreed();
      if (signal.aborted) break;
      const running: Promise<void> = task(item)
        .catch((error) => void (failure ??= { error }))
        .finally(() => {
          inProgress.delete(running);
          wake();
        });
      inProgress.add(running);
    }
    await Promise.all(inProgress);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.error;
}
