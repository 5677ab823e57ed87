/**
 * `ingest resume <locationId>`: starts a paused location again (after its token was fixed).
 * Clears the pause reason and resumes the location's queue for every worker process.
 */
import { clearHold, locationQueueName, readHold, type LocationHold } from '@ghl-ingest/queue';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export async function resumeLocation(redis: Redis, prefix: string, locationId: string): Promise<LocationHold | undefined> {
  const hold = await readHold(redis, prefix, locationId);
  const queue = new Queue(locationQueueName(locationId), { connection: redis, prefix });
  try {
    await queue.resume();
  } finally {
    await queue.close();
  }
  await clearHold(redis, prefix, locationId);
  return hold;
}
