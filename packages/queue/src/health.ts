/** Readiness as both HTTP servers (the worker's admin endpoint and the intake) answer it. */
import type { RedisClient } from './connection.ts';

export interface Readiness {
  status: 200 | 503;
  body: { status: 'ready' } | { status: 'unavailable'; message: string };
  /** Seconds, for a `Retry-After` header when not ready. */
  retryAfter?: number;
}

export async function readiness(redis: RedisClient): Promise<Readiness> {
  try {
    await redis.ping();
    return { status: 200, body: { status: 'ready' } };
  } catch {
    return { status: 503, body: { status: 'unavailable', message: 'Redis does not answer' }, retryAfter: 5 };
  }
}
