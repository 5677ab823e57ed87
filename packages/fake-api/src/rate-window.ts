/**
 * HighLevel's rate accounting as the stand-in models it: a burst budget per window, counted in
 * a strict rolling window (the assumption the worker must survive) or in fixed windows, plus a
 * daily cap. Times are milliseconds on one monotonic clock passed in by the caller.
 */
export type WindowMode = 'rolling' | 'fixed';

export interface RateLimits {
  /** Requests per window. HighLevel: 100. */
  max: number;
  /** Window length in ms. HighLevel: 10,000. */
  windowMs: number;
  /** Requests per day. HighLevel: 200,000. */
  daily: number;
  mode: WindowMode;
}

export interface RateAnswer {
  allowed: boolean;
  /** Left in the burst window after this request. */
  remaining: number;
  dailyRemaining: number;
  /** When refused: ms until a request would be allowed. */
  retryInMs: number;
}

export class RateWindow {
  /** Accepted request times, oldest first (rolling mode). */
  #times: number[] = [];
  #head = 0;
  #fixedStart = 0;
  #fixedCount = 0;
  #dayKey = '';
  #dayCount = 0;

  /** Counts one request at `now` if the budget allows it. */
  take(now: number, day: string, limits: RateLimits): RateAnswer {
    this.#rollDay(day);
    const inWindow = this.#inWindow(now, limits);
    if (this.#dayCount >= limits.daily) {
      return { allowed: false, remaining: Math.max(0, limits.max - inWindow), dailyRemaining: 0, retryInMs: 0 };
    }
    if (inWindow >= limits.max) {
      return { allowed: false, remaining: 0, dailyRemaining: limits.daily - this.#dayCount, retryInMs: this.#retryIn(now, limits) };
    }
    this.#record(now, limits);
    this.#dayCount += 1;
    return {
      allowed: true,
      remaining: limits.max - inWindow - 1,
      dailyRemaining: limits.daily - this.#dayCount,
      retryInMs: 0,
    };
  }

  /** What the headers of an answer that did not count (401, 429) report. */
  peek(now: number, day: string, limits: RateLimits): { remaining: number; dailyRemaining: number } {
    this.#rollDay(day);
    return {
      remaining: Math.max(0, limits.max - this.#inWindow(now, limits)),
      dailyRemaining: Math.max(0, limits.daily - this.#dayCount),
    };
  }

  #rollDay(day: string): void {
    if (day !== this.#dayKey) {
      this.#dayKey = day;
      this.#dayCount = 0;
    }
  }

  #inWindow(now: number, limits: RateLimits): number {
    if (limits.mode === 'fixed') {
      const start = Math.floor(now / limits.windowMs) * limits.windowMs;
      if (start !== this.#fixedStart) {
        this.#fixedStart = start;
        this.#fixedCount = 0;
      }
      return this.#fixedCount;
    }
    // A request at exactly now - windowMs has left the window.
    while (this.#head < this.#times.length && (this.#times[this.#head] ?? Infinity) <= now - limits.windowMs) this.#head += 1;
    if (this.#head > 1024 && this.#head * 2 > this.#times.length) {
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
    return this.#times.length - this.#head;
  }

  #record(now: number, limits: RateLimits): void {
    if (limits.mode === 'fixed') this.#fixedCount += 1;
    else this.#times.push(now);
  }

  #retryIn(now: number, limits: RateLimits): number {
    if (limits.mode === 'fixed') return this.#fixedStart + limits.windowMs - now;
    const oldest = this.#times[this.#head] ?? now;
    return Math.max(1, oldest + limits.windowMs - now);
  }
}
