/**
 * Redis connections with roles. Workers wait out a Redis outage (`maxRetriesPerRequest: null`,
 * as BullMQ requires for them); producers fail fast, as BullMQ advises for queues
 * (`enableOfflineQueue: false`): a command while Redis is away fails at once instead of waiting
 * in memory, so a person or a sync process hears at once that nothing was accepted. A `service`
 * is a long-running producer (the intake, the library in a sync process) that must outlive an
 * outage: each call fails fast while Redis is away (the intake answers 503), but the connection
 * keeps reconnecting, so it works again once Redis is back. Producers wait for `ready` before their
 * first command (`connectProducer`). Every connection is named `<prefix>:<role>` for `CLIENT LIST`.
 */
import { Redis, type RedisOptions } from 'ioredis';

export type ConnectionRole = 'worker' | 'producer' | 'service';

/**
 * `autoPipelining` batches the commands issued in one tick into one write: with dozens of jobs in
 * flight, far fewer syscalls and less Redis CPU (measured by `pnpm bench delivery`). Not for
 * connections that block or subscribe.
 */
export function createRedis(url: string, role: ConnectionRole, name: string, extra: RedisOptions = {}): Redis {
  const failFast: RedisOptions = { maxRetriesPerRequest: 1, connectTimeout: 5_000, enableOfflineQueue: false };
  const options: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: true }
      : role === 'service'
        ? { ...failFast, retryStrategy: (times) => Math.min(200 * times, 2_000) }
        : { ...failFast, retryStrategy: (times) => (times > 3 ? null : 200 * times) };
  return new Redis(url, { ...options, connectionName: name, ...extra });
}
