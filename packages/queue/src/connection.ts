/**
 * Redis connections with roles. Workers wait out a Redis outage (`maxRetriesPerRequest: null`,
 * as BullMQ requires for them); producers fail fast so a person or a sync process hears at once
 * that nothing was accepted. Every connection is named `<prefix>:<role>` for `CLIENT LIST`.
 */
import { Redis, type RedisOptions } from 'ioredis';

export type ConnectionRole = 'worker' | 'producer';

/**
 * `autoPipelining` batches the commands issued in one tick into one write: with dozens of jobs in
 * flight, far fewer syscalls and less Redis CPU (measured by `pnpm bench delivery`). Not for
 * connections that block or subscribe.
 */
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
