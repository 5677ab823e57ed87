/**
 * A location's holds: paused (credentials rejected, or none configured) until a person resumes
 * it, or parked until its daily budget resets. Owns the keys `state:{<id>}` (HASH: state, reason,
 * since, until) and `held` (SET of the locations with such a hash, so readers need not scan every
 * location), and how a hold is read back (`parseHold`). Pausing pauses the location's BullMQ
 * queue too; resuming makes it due in the ready set.
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../connection.ts';
import type { LocationQueues } from './queues.ts';
import type { ReadySet } from './ready-set.ts';

export type LocationHold = { state: 'paused'; reason: string; since: number } | { state: 'parked'; reason: string; since: number; until: number };

export interface HoldKeys {
  /** HASH: why a location is paused or parked (state, reason, since, until). */
  state(locationId: string): string;
  /** SET: locations with a `state` hash (paused or parked). */
  held: string;
}

export function holdKeys(prefix: string): HoldKeys {
  return { state: (locationId) => `${prefix}:state:{${locationId}}`, held: `${prefix}:held` };
}

export class Holds {
  readonly #redis: RedisClient;
  readonly #keys: HoldKeys;
  readonly #queues: LocationQueues;
  readonly #readySet: ReadySet;

  constructor(redis: RedisClient, prefix: string, queues: LocationQueues, readySet: ReadySet) {
    this.#redis = redis;
    this.#keys = holdKeys(prefix);
    this.#queues = queues;
    this.#readySet = readySet;
  }

  /** Stops the location in every process until resumed (credentials rejected, or none configured). */
  async pause(locationId: string, reason: string): Promise<void> {
    await this.#write(locationId, { state: 'paused', reason, since: Date.now() });
    await this.#queues.with(locationId, (q) => q.pause());
  }

  /** Records why the location waits until `until` (its daily budget is spent); the wait itself is the turn's end. */
  async park(locationId: string, until: number, reason: string): Promise<void> {
    await this.#write(locationId, { state: 'parked', reason, since: Date.now(), until });
  }

  /**
   * Starts a paused (or parked) location again, due now in every process; returns what held it.
   * A parked location whose day is not over parks again at its first message.
   */
  async resume(locationId: string): Promise<LocationHold | undefined> {
    const hold = await this.hold(locationId);
    await this.#queues.with(locationId, (q) => q.resume());
    // Two slots on Redis Cluster (the location's, the held set's): two commands, the hold first.
    await this.#redis.del(this.#keys.state(locationId));
    await this.#redis.srem(this.#keys.held, locationId);
    await this.#readySet.mark([locationId], 'resume');
    return hold;
  }

  async hold(locationId: string): Promise<LocationHold | undefined> {
    return parseHold(await this.#redis.hgetall(this.#keys.state(locationId)));
  }

  /** The locations listed as held (paused or parked; a parked one's day may be over). */
  async listed(): Promise<string[]> {
    return this.#redis.smembers(this.#keys.held);
  }

  /** Lists locations as held again (after Redis lost the set's writes; their hashes are on their own slots). */
  async list(locationIds: readonly string[]): Promise<void> {
    if (locationIds.length > 0) await this.#redis.sadd(this.#keys.held, ...locationIds);
  }

  /** Queues the read of a location's hold on `p` (the location's slot), for a snapshot. */
  readHold(p: ChainableCommander, locationId: string): void {
    p.hgetall(this.#keys.state(locationId));
  }

  /** Reads the reply of `readHold`: the hold in force at `now`. */
  parseHold([hash]: readonly unknown[], now: number): LocationHold | undefined {
    return parseHold(hash as Record<string, string>, now);
  }

  async #write(locationId: string, hold: LocationHold): Promise<void> {
    const key = this.#keys.state(locationId);
    // Listed as held before the hold is written, so a reader of the set never misses one; the
    // set is another slot than the location's on Redis Cluster, hence outside the transaction.
    await this.#redis.sadd(this.#keys.held, locationId);
    await this.#redis
      .multi()
      .del(key)
      .hset(key, Object.fromEntries(Object.entries(hold).map(([k, v]) => [k, String(v)])))
      .exec();
  }
}

/** A hold as its hash stores it; a parked one whose `until` has passed holds no more. */
export function parseHold(h: Record<string, string>, now = Date.now()): LocationHold | undefined {
  if (h.state === 'paused') return { state: 'paused', reason: h.reason ?? '', since: Number(h.since) };
  if (h.state === 'parked') {
    const until = Number(h.until);
    if (until <= now) return undefined;
    return { state: 'parked', reason: h.reason ?? '', since: Number(h.since), until };
  }
  return undefined;
}
