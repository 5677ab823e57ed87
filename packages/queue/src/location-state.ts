/**
 * Why a location is not sending: paused because HighLevel rejected its credentials, or parked
 * until its daily budget resets. The BullMQ queue's own pause and rate limit do the stopping;
 * this hash keeps the reason, for `status` and for people.
 */
import type { Redis } from 'ioredis';
import { keysFor } from './keys.ts';

export type LocationHold =
  | { state: 'paused'; reason: string; since: number }
  | { state: 'parked'; reason: string; since: number; until: number };

export async function readHold(redis: Redis, prefix: string, locationId: string): Promise<LocationHold | undefined> {
  const h = await redis.hgetall(keysFor(prefix).state(locationId));
  if (h.state === 'paused') return { state: 'paused', reason: h.reason ?? '', since: Number(h.since) };
  if (h.state === 'parked') {
    const until = Number(h.until);
    if (until <= Date.now()) return undefined;
    return { state: 'parked', reason: h.reason ?? '', since: Number(h.since), until };
  }
  return undefined;
}

export async function writeHold(redis: Redis, prefix: string, locationId: string, hold: LocationHold): Promise<void> {
  const key = keysFor(prefix).state(locationId);
  await redis.multi().del(key).hset(key, Object.fromEntries(Object.entries(hold).map(([k, v]) => [k, String(v)]))).exec();
}

export async function clearHold(redis: Redis, prefix: string, locationId: string): Promise<void> {
  await redis.del(keysFor(prefix).state(locationId));
}
