/**
 * Redis connections with roles. Workers wait out a Redis outage (`maxRetriesPerRequest: null`,
 * as BullMQ requires for them); producers fail fast so a person or a sync process hears at once
 * that nothing was accepted. Every connection is named `<prefix>:<role>` for `CLIENT LIST`.
 */
import { Redis, type RedisOptions } from 'ioredis';

export type ConnectionRole = 'worker' | 'producer';

export function createRedis(url: string, role: ConnectionRole, name: string, extra: RedisOptions = {}): Redis {
  const options: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: true }
      : {
          maxRetriesPerRequest: 1,
          connectTimeout: 5_000,
          enableOfflineQueue: true,
          retryStrategy: (times) => (times > 3 ? null : 200 * times),
        };
  return new Redis(url, { ...options, connectionName: name, ...extra });
}
