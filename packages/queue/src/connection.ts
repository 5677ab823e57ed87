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

/**
 * The masters, once the client knows them: a cluster client learns its nodes when it becomes
 * ready, and until then `everyPrimary` would be an empty list (a scan that finds nothing, a run id
 * of nobody).
 */
export async function knownPrimaries(redis: RedisClient): Promise<Redis[]> {
  if (redis instanceof Cluster) await whenReady(redis, 30_000);
  return everyPrimary(redis);
}

/** Resolves once the connection is ready (a cluster client: once it knows the slots); fails after `deadlineMs` or when it is closed. */
export function whenReady(redis: RedisClient, deadlineMs: number): Promise<void> {
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

/** Keys matching a SCAN pattern, in batches, from every master (a cluster's keys are spread over them). */
export async function* scanEvery(redis: RedisClient, pattern: string, count = 1000): AsyncGenerator<string[]> {
  for (const node of await knownPrimaries(redis)) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (found.length > 0) yield found;
    } while (cursor !== '0');
  }
}

/**
 * The Redis server's run id: new at every start of redis-server. On a cluster, the masters' run
 * ids together: a master restarted, or replaced by its replica in a failover (which may have
 * lost the last writes acknowledged to the old master), changes it.
 */
export async function redisRunId(redis: RedisClient): Promise<string> {
  const ids = await Promise.all((await knownPrimaries(redis)).map(async (node) => /^run_id:(\w+)/m.exec(await node.info('server'))?.[1] ?? ''));
  return ids.sort().join(',');
}
