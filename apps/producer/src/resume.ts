/**
 * `ingest resume <locationId>`: starts a paused location again (after its token was fixed), for
 * every worker process: the location's owner clears the reason, resumes its queue and makes it due.
 */
import { ProducerLocations, type LocationHold } from '@ghl-ingest/queue';
import type { RedisClient } from '@ghl-ingest/queue';

export async function resumeLocation(redis: RedisClient, prefix: string, locationId: string): Promise<LocationHold | undefined> {
  return new ProducerLocations(redis, { prefix }).resume(locationId);
}
