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
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A connection: one Redis, or a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL, or settings that may name a cluster's seed nodes instead. */
export type RedisTarget = string | { redisUrl: string; redisClusterNodes?: readonly string[] | undefined };

export type ConnectionRole = 'worker' | 'producer' | 'service';

/**
 * A connection for `role`, to the cluster when the target names seed nodes, else to the URL.
 * (The comment above the role options says why producers fail fast and workers wait.)
 */
export function createRedis(target: string, role: ConnectionRole, name: string, extra?: RedisOptions): Redis;
export function createRedis(target: RedisTarget, role: ConnectionRole, name: string, extra?: RedisOptions): RedisClient;
export function createRedis(target: RedisTarget, role: ConnectionRole, name: string, extra: RedisOptions = {}): RedisClient {
  const failFast: RedisOptions = { maxRetriesPerRequest: 1, connectTimeout: 5_000, enableOfflineQueue: false };
  const options: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: true }
      : role === 'service'
        ? { ...failFast, retryStrategy: (times) => Math.min(200 * times, 2_000) }
        : { ...failFast, retryStrategy: (times) => (times > 3 ? null : 200 * times) };
  const nodes = typeof target === 'string' ? undefined : target.redisClusterNodes;
  const url = typeof target === 'string' ? target : target.redisUrl;
  if (nodes === undefined || nodes.length === 0) return new Redis(url, { ...options, connectionName: name, ...extra });
  return createCluster(nodes, { ...options, connectionName: name, ...extra });
}

/**
 * A Redis Cluster client from seed URLs (`redis://` or `rediss://`, user and password taken from
 * the first). The role's retry policy becomes the cluster's; commands follow MOVED/ASK redirects
 * and a failover's new master by themselves. Reads go to masters (replicas lag).
 */
function createCluster(seeds: readonly string[], options: RedisOptions): Cluster {
  const urls = seeds.map((s) => new URL(s));
  const first = urls[0];
  if (first === undefined) throw new Error('no cluster seed node');
  const { retryStrategy, enableOfflineQueue, ...perNode } = options;
  const auth = {
    ...(first.username === '' ? {} : { username: decodeURIComponent(first.username) }),
    ...(first.password === '' ? {} : { password: decodeURIComponent(first.password) }),
  };
  const clusterOptions: ClusterOptions = {
    redisOptions: { ...perNode, ...auth, ...(first.protocol === 'rediss:' ? { tls: {} } : {}) },
    scaleReads: 'master',
    enableReadyCheck: true,
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(typeof retryStrategy === 'function' ? { clusterRetryStrategy: (times: number) => retryStrategy(times) } : {}),
    // Managed services (TLS) must be reached by the names their certificates carry.
    ...(first.protocol === 'rediss:' ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
  };
  return new Cluster(
    urls.map((u) => ({ host: u.hostname, port: Number(u.port === '' ? 6379 : u.port) })),
    clusterOptions,
  );
}

/** The masters of a cluster, or the one Redis: where a SCAN over every key must run. */
export function everyPrimary(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/** Whether keys of different locations may be sent in one pipeline or transaction (not on a cluster). */
export function mixesSlots(redis: RedisClient): boolean {
  return !(redis instanceof Cluster);
}
