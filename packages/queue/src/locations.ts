/**
 * The registry of locations: producers add each location they enqueue for, and announce new
 * ones; workers start serving a location when they hear of it (or at their next scan).
 */
import type { Redis } from 'ioredis';
import { keysFor } from './keys.ts';

export async function registerLocations(redis: Redis, prefix: string, locationIds: Iterable<string>): Promise<void> {
  const keys = keysFor(prefix);
  const ids = [...new Set(locationIds)];
  if (ids.length === 0) return;
  const added = await redis.sadd(keys.locations, ...ids);
  if (added > 0) await redis.publish(keys.locationsChannel, ids.join(','));
}

export async function listLocations(redis: Redis, prefix: string): Promise<string[]> {
  return (await redis.smembers(keysFor(prefix).locations)).sort();
}
