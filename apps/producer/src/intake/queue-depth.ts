/**
 * How many messages wait in each location's queue, read for a request's locations at once and
 * cached for a second, so a busy intake adds little Redis load. The wait list is read directly
 * (LLEN of BullMQ's `wait` key): no Queue object per location, so memory does not grow with the
 * number of locations ever seen.
 */
import { locationQueueName, mixesSlots, type RedisClient } from '@ghl-ingest/queue';

/** Locations whose count is remembered at most; past it the oldest reading is dropped. */
const MAX_REMEMBERED = 10_000;
/** Milliseconds a reading is trusted. */
const FRESH_MS = 1000;

export class QueueDepth {
  #redis: RedisClient;
  #prefix: string;
  #now: () => number;
  /** Insertion-ordered: the first entry is the oldest reading. */
  #cache = new Map<string, { at: number; count: number }>();

  constructor(redis: RedisClient, prefix: string, now: () => number = Date.now) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#now = now;
  }

  /** The first location at or over `highWater`, or undefined; stale counts are read in one round trip. */
  async over(locations: ReadonlySet<string>, highWater: number): Promise<string | undefined> {
    const now = this.#now();
    const stale = [...locations].filter((id) => {
      const c = this.#cache.get(id);
      return c === undefined || now - c.at > FRESH_MS;
    });
    if (stale.length > 0) {
      const counts = await this.#read(stale);
      stale.forEach((id, i) => this.#remember(id, { at: now, count: counts[i] ?? 0 }));
    }
    for (const id of locations) {
      if ((this.#cache.get(id)?.count ?? 0) >= highWater) return id;
    }
    return undefined;
  }

  /** A message accepted here: the cached count grows with it until it is read again. */
  added(locationId: string): void {
    const c = this.#cache.get(locationId);
    if (c !== undefined) c.count += 1;
  }

  async #read(ids: readonly string[]): Promise<number[]> {
    const keys = ids.map((id) => `${this.#prefix}:${locationQueueName(id)}:wait`);
    if (mixesSlots(this.#redis)) {
      // One Redis: one pipeline.
      const replies = (await this.#redis.pipeline(keys.map((key) => ['llen', key])).exec()) ?? [];
      return replies.map(([error, count]) => {
        if (error !== null) throw error;
        return Number(count);
      });
    }
    // A cluster pipeline must stay in one slot; these are sent at once and ioredis writes them
    // back to back to each node, so they still cost one round trip.
    return Promise.all(keys.map((key) => this.#redis.llen(key)));
  }

  #remember(id: string, reading: { at: number; count: number }): void {
    this.#cache.delete(id);
    this.#cache.set(id, reading);
    if (this.#cache.size > MAX_REMEMBERED) {
      const oldest = this.#cache.keys().next();
      if (oldest.done !== true) this.#cache.delete(oldest.value);
    }
  }
}
