/** A producer's Redis connection, checked at once: nothing is read or accepted without Redis. */
import { coerceError, ConfigError, createRedis, type Config, type ConnectionRole } from '@ghl-ingest/queue';
import type { Redis } from 'ioredis';

export async function connectProducer(config: Config, name: string, role: ConnectionRole = 'producer'): Promise<Redis> {
  const redis = createRedis(config.redisUrl, role, `${config.queuePrefix}:${name}`);
  let lastError: Error | undefined;
  // Connection errors surface through the commands that fail; without a listener ioredis prints them.
  redis.on('error', (error: unknown) => {
    lastError = coerceError(error);
  });
  try {
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    const cause = lastError ?? coerceError(error);
    throw new ConfigError(`cannot reach Redis at ${redactUrl(config.redisUrl)} (${cause.message}): start one, or set REDIS_URL`, { cause });
  }
  return redis;
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
