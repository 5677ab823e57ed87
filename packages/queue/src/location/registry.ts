/**
 * The registry of locations: every location that ever had a message enqueued, for `status`,
 * `dlq` and metrics (workers do not read it), and the locations at work now. Owns the key
 * `locations` (SET); `active()` reads the ready set and the held set through their owners.
 */
import type { RedisClient } from '../connection.ts';
import type { Holds } from './holds.ts';
import type { ReadySet } from './ready-set.ts';

export function registryKey(prefix: string): string {
  return `${prefix}:locations`;
}

export class Registry {
  readonly #redis: RedisClient;
  readonly #key: string;
  readonly #readySet: ReadySet;
  readonly #holds: Holds;

  constructor(redis: RedisClient, prefix: string, readySet: ReadySet, holds: Holds) {
    this.#redis = redis;
    this.#key = registryKey(prefix);
    this.#readySet = readySet;
    this.#holds = holds;
  }

  /** Makes locations known to `status`, `dlq` and metrics. */
  async register(locationIds: Iterable<string>): Promise<void> {
    const ids = [...new Set(locationIds)];
    if (ids.length > 0) await this.#redis.sadd(this.#key, ...ids);
  }

  /** How many locations ever had a message enqueued. */
  async knownCount(): Promise<number> {
    return this.#redis.scard(this.#key);
  }

  /** Every location that ever had a message enqueued, sorted. */
  async known(): Promise<string[]> {
    return (await this.#redis.smembers(this.#key)).sort();
  }

  /**
   * The locations that may have messages waiting, in flight or retrying, or a hold: those in the
   * ready set and those paused or parked. What the metrics read, so that a scrape grows with the
   * locations at work, not with every location ever known.
   */
  async active(): Promise<string[]> {
    const [ready, held] = await Promise.all([this.#readySet.members(), this.#holds.listed()]);
    return [...new Set([...ready, ...held])].sort();
  }
}
