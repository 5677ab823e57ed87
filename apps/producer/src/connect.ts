/**
 * A producer's Redis connection, ready before it is returned: nothing is read or accepted without
 * Redis, and a producer's commands fail fast rather than queue while it is away (connection.ts).
 */
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
    await ready(redis, CONNECT_DEADLINE_MS);
  } catch (error) {
    redis.disconnect();
    const cause = lastError ?? coerceError(error);
    throw new ConfigError(`cannot reach Redis at ${redactUrl(config.redisUrl)} (${cause.message}): start one, or set REDIS_URL`, { cause });
  }
  return redis;
}

/** How long a producer waits for Redis at start before saying it cannot reach it. */
const CONNECT_DEADLINE_MS = 5_000;

function ready(redis: Redis, deadlineMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('end', onEnd);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onReady = () => done();
    const onEnd = () => done(new Error('connection closed'));
    const timer = setTimeout(() => done(new Error(`not ready within ${deadlineMs / 1000} s`)), deadlineMs);
    redis.once('ready', onReady);
    redis.once('end', onEnd);
  });
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
