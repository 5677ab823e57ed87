/**
 * Where the per-location rate limiter plugs into delivery. The worker asks for a slot before each
 * POST and reports the answer after it; the limiter decides how long a location must wait.
 */
import type { RateHeaders } from './http-client.ts';

export type Reservation =
  | { ok: true; slot: string }
  /** Wait `waitMs` before asking again; `parkedUntil` when the daily budget is spent. */
  | { ok: false; waitMs: number; parkedUntil?: number };

export interface RateLimiter {
  acquire(locationId: string): Promise<Reservation>;
  /** The request of `slot` got an answer (or failed); `rate` is what its headers said. */
  settle(locationId: string, slot: string, rate: RateHeaders | undefined): Promise<void>;
  /** HighLevel answered 429: how long this location should wait (ms). */
  refused(locationId: string, retryAfterMs: number | undefined): Promise<number>;
}

/** No limits at all: for benchmarks of delivery alone, and until a location's budget is known. */
export class UnlimitedRateLimiter implements RateLimiter {
  #windowMs: number;

  constructor(windowMs = 10_000) {
    this.#windowMs = windowMs;
  }

  acquire(): Promise<Reservation> {
    return Promise.resolve({ ok: true, slot: '' });
  }

  settle(): Promise<void> {
    return Promise.resolve();
  }

  refused(_locationId: string, retryAfterMs: number | undefined): Promise<number> {
    return Promise.resolve(retryAfterMs ?? this.#windowMs);
  }
}
