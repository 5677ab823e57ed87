/**
 * A producer's Redis connection, ready before it is returned: nothing is read or accepted without
 * Redis, and a producer's commands fail fast rather than queue while it is away (connection.ts).
 */
import { coerceError, ConfigError, createRedis, loadConfig, whenReady, type Config, type ConnectionRole } from '@ghl-ingest/queue';
import type { RedisClient } from '@ghl-ingest/queue';

export async function connectProducer(config: Config, name: string, role: ConnectionRole = 'producer'): Promise<RedisClient> {
  const redis = createRedis(config, role, `${config.queuePrefix}:${name}`);
  let lastError: Error | undefined;
  // Connection errors surface through the commands that fail; without a listener ioredis prints them.
  redis.on('error', (error: unknown) => {
    lastError = coerceError(error);
  });
  try {
    await whenReady(redis, CONNECT_DEADLINE_MS);
  } catch (error) {
    redis.disconnect();
    const cause = lastError ?? coerceError(error);
    const where =
      config.redisClusterNodes === undefined
        ? `Redis at ${redactUrl(config.redisUrl)}`
        : `the Redis Cluster at ${config.redisClusterNodes.map(redactUrl).join(', ')}`;
    throw new ConfigError(
      `cannot reach ${where} (${cause.message}): start one, or set ${config.redisClusterNodes === undefined ? 'REDIS_URL' : 'REDIS_CLUSTER_NODES'}`,
      { cause },
    );
  }
  return redis;
}

/** A one-off command's connection (`ingest status`, `dlq`, `auth`...): settings loaded, connected, closed after `fn`. */
export async function withRedis(name: string, fn: (redis: RedisClient, config: Config) => Promise<void>): Promise<void> {
  const config = loadConfig();
  const redis = await connectProducer(config, name);
  try {
    await fn(redis, config);
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** How long a producer waits for Redis at start before saying it cannot reach it. */
const CONNECT_DEADLINE_MS = 5_000;

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
