/**
 * The per-location rate limiter, shared by every worker process through Redis. A sliding log:
 * each request holds a slot from its reservation until one window after its answer (HighLevel
 * counted it somewhere between sending and answering, so any rolling window of HighLevel's holds
 * at most the budget, whatever the latency). All times are Redis's own clock.
 *
 * When the window is full, `acquire` reserves the moment a slot frees and says how long to wait,
 * so processes never wake together to fight over one slot. It also checks the delivery ledger, and
 * `settle` writes it: one Redis call before a post and one after, all keys of a location in one
 * hash slot (`{locationId}`), so the scripts run on Redis Cluster too.
 *
 * What HighLevel's headers say is learned: a lower `X-RateLimit-Max` or longer interval is
 * adopted; `X-RateLimit-Remaining` lower than our own count becomes slots of "others" (other apps
 * spending the same location); `X-RateLimit-Daily-Remaining` corrects the day's count.
 */
import type { RedisClient } from './connection.ts';
import { formatLedgerEntry, parseLedgerEntry, type LedgerEntry } from './ledger.ts';
import { keysFor } from './keys.ts';
import type { Budget } from './rate-budget.ts';
import { defineScripts } from './scripts.ts';
import { TickBatch } from './tick-batch.ts';

/**
 * Expected latency until a location's first answers teach us better (scheduling only). Zero:
 * a job that wakes too early is told by the gate exactly how much longer to wait, while one that
 * was scheduled too late wastes budget that nothing can win back.
 */
const DEFAULT_LATENCY_MS = 0;

export type Acquired =
  | { kind: 'delivered'; entry: LedgerEntry }
  /** `sendInMs` 0: in flight now, send at once. Otherwise call `proceed` after that long. */
  | { kind: 'reserved'; slot: string; sendInMs: number }
  | { kind: 'wait'; waitMs: number }
  | { kind: 'parked'; waitMs: number; until: number }
  /** The job's lock is not the token given: another worker may hold the job; nothing was taken. */
  | { kind: 'lock-lost' };

/** A job's BullMQ lock, checked in the same call that takes its slot. */
export interface JobLock {
  /** `<prefix>:loc.{<locationId>}:<jobId>:lock`: in the location's hash slot. */
  key: string;
  /** The token this worker holds the job with. */
  token: string;
}

/** What the `X-RateLimit-*` headers of an answer said. */
export interface RateHeaders {
  max?: number;
  remaining?: number;
  intervalMs?: number;
  daily?: number;
  dailyRemaining?: number;
}

export interface RateLimiterOptions {
  prefix: string;
  /** The budget of a location (settings and overrides). */
  budget: (locationId: string) => Budget;
  /** How long a request may take: a reserved slot counts at least this long (HTTP timeout). */
  inflightMs: number;
  /** GHL_DAILY_RESET as ms after midnight UTC. */
  resetOffsetMs: number;
  /** How far ahead a slot may be reserved; further, and the location waits instead. Default 2 windows. */
  horizonMs?: (budget: Budget) => number;
  /** How long delivery-ledger entries live. */
  ledgerTtlMs: number;
}

export class RateLimiter {
  #redis: RedisClient;
  #o: RateLimiterOptions;

  constructor(redis: RedisClient, options: RateLimiterOptions) {
    this.#redis = redis;
    this.#o = options;
    defineScripts(redis);
  }

  /**
   * Checks that `lock` (when given) is still held with its token, and the ledger for `key`, then
   * reserves a slot for `slot` (a unique id) or says how long to wait. Calls for one location in
   * the same tick go to Redis as one script call.
   */
  acquire(locationId: string, key: string, slot: string, lock?: JobLock): Promise<Acquired> {
    return this.#acquires.add(locationId, { key, slot, lock });
  }

  readonly #acquires = new TickBatch<{ key: string; slot: string; lock: JobLock | undefined }, Acquired>(async (locationId, items) => {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const horizon = this.#o.horizonMs?.(b) ?? 2 * b.windowMs;
    const keys = keysFor(this.#o.prefix);
    const r = await this.#redis.ghlAcquire(
      9 + 2 * items.length,
      k.answered,
      k.inflight,
      k.reserved,
      k.others,
      k.block,
      k.daily,
      k.learned,
      k.probe,
      k.stats,
      ...items.map((i) => keys.ledger(locationId, i.key)),
      // Without a lock to check, its place holds a key of the same slot that is not read.
      ...items.map((i) => i.lock?.key ?? keys.ledger(locationId, i.key)),
      b.max,
      b.windowMs,
      b.daily,
      this.#o.inflightMs,
      this.#o.resetOffsetMs,
      horizon,
      DEFAULT_LATENCY_MS,
      ...items.map((i) => i.slot),
      ...items.map((i) => i.lock?.token ?? ''),
    );
    return items.map(({ slot }, i): Acquired => {
      const [code, value, until] = [Number(r[3 * i]), r[3 * i + 1], r[3 * i + 2]];
      switch (code) {
        case 1:
          return { kind: 'delivered', entry: parseLedgerEntry(String(value)) };
        case 0:
          return { kind: 'reserved', slot, sendInMs: Number(value) };
        case 3:
          return { kind: 'parked', waitMs: Number(value), until: Number(until) };
        case 4:
          return { kind: 'lock-lost' };
        default:
          return { kind: 'wait', waitMs: Number(value) };
      }
    });
  });

  /**
   * The gate of a reserved request, when its time comes: `go`, or `later` (call again after
   * `waitMs`: the window is still full), or `wait` (the location waits; the slot was given back).
   */
  async proceed(locationId: string, slot: string): Promise<{ kind: 'go' } | { kind: 'later' | 'wait'; waitMs: number }> {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const [code, waitMs] = await this.#redis.ghlProceed(
      k.answered,
      k.inflight,
      k.reserved,
      k.others,
      k.block,
      k.learned,
      k.probe,
      slot,
      b.max,
      b.windowMs,
      b.daily,
      this.#o.inflightMs,
      DEFAULT_LATENCY_MS,
    );
    if (code === 0) return { kind: 'go' };
    return { kind: code === 1 ? 'later' : 'wait', waitMs };
  }

  /**
   * The answer of a slot's request (or its failure): learns from the headers, writes the ledger
   * when delivered, and keeps count of HighLevel's own failures in a row at this location: `down`
   * (unreachable, 502/503/504, timeout) adds one and returns the count, `up` (it answered for
   * itself) forgets them. Returns the count, 0 when not `down`.
   */
  settle(locationId: string, key: string, slot: string, rate: RateHeaders | undefined, delivered?: LedgerEntry, health?: 'up' | 'down'): Promise<number> {
    return this.#settles.add(locationId, { key, slot, rate, delivered, health });
  }

  readonly #settles = new TickBatch<
    { key: string; slot: string; rate: RateHeaders | undefined; delivered: LedgerEntry | undefined; health: 'up' | 'down' | undefined },
    number
  >(async (locationId, items) => {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const v = (n: number | undefined) => (n === undefined ? '' : n);
    const keys = keysFor(this.#o.prefix);
    const r = await this.#redis.ghlSettle(
      9 + items.length,
      k.answered,
      k.inflight,
      k.others,
      k.learned,
      k.daily,
      k.probe,
      k.outage,
      k.stats,
      k.block,
      ...items.map((i) => keys.ledger(locationId, i.key)),
      b.max,
      b.windowMs,
      b.daily,
      this.#o.resetOffsetMs,
      this.#o.ledgerTtlMs,
      this.#o.inflightMs,
      ...items.flatMap(({ slot, rate, delivered, health }) => [
        slot,
        v(rate?.remaining),
        v(rate?.max),
        v(rate?.intervalMs),
        v(rate?.dailyRemaining),
        v(rate?.daily),
        delivered === undefined ? '' : formatLedgerEntry(delivered),
        health ?? '',
      ]),
    );
    return r.map(Number);
  });

  /**
   * HighLevel answered 429 (or is down): the slot is given back and the location waits in every
   * process `retryAfterMs`, else one window; then one request probes before the rest go.
   */
  async refuse(locationId: string, slot: string, retryAfterMs: number | undefined): Promise<number> {
    const k = this.#keys(locationId);
    const wait = retryAfterMs ?? this.#o.budget(locationId).windowMs;
    return this.#redis.ghlRefuse(k.inflight, k.block, k.probe, slot, Math.max(1, Math.ceil(wait)));
  }

  /** Gives back a reservation that was not used. */
  async release(locationId: string, slot: string): Promise<void> {
    const k = this.#keys(locationId);
    await this.#redis.ghlRelease(k.reserved, k.inflight, k.daily, k.probe, slot, this.#o.resetOffsetMs);
  }

  #keys(locationId: string) {
    return rateKeys(this.#o.prefix, locationId);
  }
}

/** The limiter's keys of a location (all in its hash slot). */
export function rateKeys(prefix: string, locationId: string) {
  const base = keysFor(prefix).rate(locationId);
  return {
    answered: `${base}:answered`,
    inflight: `${base}:inflight`,
    reserved: `${base}:reserved`,
    others: `${base}:others`,
    block: `${base}:block`,
    probe: `${base}:probe`,
    outage: `${base}:outage`,
    daily: `${base}:daily`,
    learned: `${base}:learned`,
    stats: keysFor(prefix).stats(locationId),
  };
}
