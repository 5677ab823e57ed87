/** Redis's own clock: every location script reads `TIME`, so what is compared with their scores reads it too. */
import type { RedisClient } from '../connection.ts';

/** Redis's time now, epoch ms. */
export async function redisNow(redis: RedisClient): Promise<number> {
  const [seconds, micros] = (await redis.time()) as [number | string, number | string];
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
