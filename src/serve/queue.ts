// The inference queue: one job at a time (the towers, the image model and the ranking each use every core, and
// their state is not meant to be shared by interleaved requests), at most `capacity` waiting beside the one that
// runs. A full queue refuses at once (the route answers 429 with Retry-After) rather than letting latency grow
// without bound.

export class QueueFullError extends Error {
  readonly statusCode = 429;
  constructor(readonly retryAfterSeconds: number) {
    super(`the server is busy (inference queue full): retry in ${retryAfterSeconds} s`);
    this.name = 'QueueFullError';
  }
}

export class InferenceQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  /** Mean seconds per job (exponential average), for Retry-After. */
  private meanSeconds = 0.05;

  constructor(readonly capacity: number) {}

  /** Jobs queued or running. */
  get depth(): number {
    return this.inFlight;
  }

  /** Resolves once every job queued so far has finished (used before the models are disposed). */
  async drained(): Promise<void> {
    while (this.inFlight > 0) await this.tail;
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    if (this.inFlight > this.capacity)
      throw new QueueFullError(Math.max(1, Math.ceil(this.inFlight * this.meanSeconds)));
    this.inFlight++;
    const result = this.tail.then(async () => {
      const started = performance.now();
      try {
        return await job();
      } finally {
        this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * ((performance.now() - started) / 1000);
        this.inFlight--;
      }
    });
    // The next job waits for this one whether it succeeded or not.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
