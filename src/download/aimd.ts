// Concurrency that backs off when the host says "too many requests" and recovers when it stops: additive
// increase, multiplicative decrease (as TCP congestion control), applied to a p-limit limiter.

export interface ConcurrencyLimiter {
  concurrency: number;
}

export class Aimd {
  private successes = 0;
  /** Bumped at each decrease; a request remembers the epoch it started in. */
  private epoch = 0;
  /** Lowest concurrency reached, for the summary. */
  min: number;

  /**
   * @param limiter whose `concurrency` this sets (p-limit's limit function)
   * @param max the ceiling (--concurrency)
   */
  constructor(
    private readonly limiter: ConcurrencyLimiter,
    private readonly max: number,
  ) {
    limiter.concurrency = max;
    this.min = max;
  }

  get current(): number {
    return this.limiter.concurrency;
  }

  /** Stamp a request as it starts; pass the stamp to `throttled`. */
  started(): number {
    return this.epoch;
  }

  /**
   * The host throttled a request (429, 503): halve, once per "round". Only a request sent after the last
   * decrease can decrease again, so the burst of refusals already in flight counts once (TCP's recovery point).
   */
  throttled(startedEpoch: number): void {
    this.successes = 0;
    if (startedEpoch < this.epoch) return;
    this.epoch++;
    this.limiter.concurrency = Math.max(1, Math.floor(this.current / 2));
    this.min = Math.min(this.min, this.current);
  }

  /** A request went through: one more slot after a full window (`current`) of successes. */
  succeeded(): void {
    if (this.current >= this.max) return;
    if (++this.successes >= this.current) {
      this.successes = 0;
      this.limiter.concurrency = this.current + 1;
    }
  }
}
