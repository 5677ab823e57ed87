/**
 * The one way integration tests get Redis. Per test file: `REDIS_URL` if set; else a
 * `redis-server` from PATH on a free port; else a testcontainers Redis (machines with Docker).
 * With `GHL_TEST_REDIS=cluster` (`pnpm test:cluster`), a real Redis Cluster of the file's own
 * instead (3 masters, 3 replicas, AOF; see RedisCluster), and the product is pointed at it the
 * way a user does, by `REDIS_CLUSTER_NODES` (`env`, `target`).
 * Per test: a fresh random prefix; afterwards every key under it is deleted, and the test
 * fails if any connection named with it (ours or BullMQ's), on any node, is still open: a leaked worker.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { RedisServer } from './redis-server.ts';
import { RedisCluster } from './redis-cluster.ts';

/** One Redis or a cluster, as the product's connections are. */
export type TestRedis = Redis | Cluster;

export interface RedisTestContext {
  /** True when this run is on a Redis Cluster (`GHL_TEST_REDIS=cluster`). */
  readonly onCluster: boolean;
  /** The one Redis's URL. On a cluster there is none: a test that needs it runs on one Redis only. */
  readonly url: string;
  /** The settings a user would set to reach this Redis, with this test's QUEUE_PREFIX. */
  readonly env: Record<string, string>;
  /** Where the product's `createRedis` should connect (config's redisUrl and redisClusterNodes). */
  readonly target: { redisUrl: string; redisClusterNodes: string[] | undefined };
  /** This test's key prefix (`t-xxxxxxxx`): pass it as the product's QUEUE_PREFIX. */
  readonly prefix: string;
  /** A connection named with this test's prefix, closed for you after the test. */
  client(options?: RedisOptions): TestRedis;
  /** Keys matching a pattern, from every master. */
  keys(pattern: string): Promise<string[]>;
  /** Connections still open under this test's prefix, by name (for assertions mid-test). */
  openConnections(): Promise<string[]>;
  /** An unshared admin connection (not counted as a leak). */
  readonly admin: TestRedis;
}

type Source = { url: string; clusterNodes: string[] | undefined; stop: () => Promise<void> };

/** No Redis listens here: on a cluster, whatever still used REDIS_URL would fail, not pass by luck. */
const NOWHERE = 'redis://127.0.0.1:1';

function wantsCluster(): boolean {
  return process.env.GHL_TEST_REDIS === 'cluster';
}

async function acquireRedis(): Promise<Source> {
  if (wantsCluster()) {
    const cluster = await RedisCluster.start();
    return { url: NOWHERE, clusterNodes: cluster.nodesSetting.split(','), stop: () => cluster.stop() };
  }
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv !== undefined && fromEnv !== '') return { url: fromEnv, clusterNodes: undefined, stop: () => Promise.resolve() };
  if (hasBinary('redis-server')) {
    const server = await RedisServer.start();
    return { url: server.url, clusterNodes: undefined, stop: () => server.stop() };
  }
  // No binary: a machine with Docker can still run the suite.
  const { RedisContainer } = await import('@testcontainers/redis');
  const container = await new RedisContainer('redis:7-alpine').start();
  return {
    url: container.getConnectionUrl(),
    clusterNodes: undefined,
    stop: async () => {
      await container.stop();
    },
  };
}

/** A connection to the source: the cluster when there is one. */
function connect(source: Source, options: RedisOptions): TestRedis {
  if (source.clusterNodes === undefined) return new Redis(source.url, options);
  return new Cluster(
    source.clusterNodes.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })),
    { redisOptions: options, scaleReads: 'master' },
  );
}

/** Every node of a cluster (replicas too: a leaked connection may sit on any), or the one Redis. */
function everyNode(redis: TestRedis): Redis[] {
  return redis instanceof Cluster ? redis.nodes('all') : [redis];
}

function hasBinary(name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function useRedis(): RedisTestContext {
  let source: Source | undefined;
  let admin: TestRedis | undefined;
  let prefix = '';
  let clients: TestRedis[] = [];

  beforeAll(async () => {
    source = await acquireRedis();
    admin = connect(source, { connectionName: 'ghl-test-admin', maxRetriesPerRequest: 3 });
    if (admin instanceof Cluster) {
      const cluster = admin;
      // Until the client knows the slots, nodes('all') is empty.
      if (cluster.status !== 'ready') await new Promise((resolve) => cluster.once('ready', resolve));
    }
  }, 60_000);

  afterAll(async () => {
    await admin?.quit();
    await source?.stop();
  });

  beforeEach(() => {
    prefix = `t-${randomBytes(5).toString('hex')}`;
    clients = [];
  });

  afterEach(async () => {
    await Promise.all(
      clients.map((c) =>
        c.quit().catch(() => {
          c.disconnect();
        }),
      ),
    );
    const a = admin as TestRedis;
    const leaked = await connectionsNamed(a, prefix, true);
    for (const { id, node } of leaked) await node.client('KILL', 'ID', id);
    await deleteKeys(a, `${prefix}*`);
    if (leaked.length > 0) {
      throw new Error(
        `leaked ${leaked.length} Redis connection(s) under ${prefix}: ${leaked.map((c) => c.name).join(', ')} ` + '(a worker, queue or client was not closed)',
      );
    }
  });

  const known = (): Source => {
    if (source === undefined) throw new Error('useRedis(): Redis is known once beforeAll has run');
    return source;
  };

  return {
    get onCluster() {
      return wantsCluster();
    },
    get url() {
      const s = known();
      if (s.clusterNodes !== undefined) throw new Error('useRedis(): on a cluster there is no REDIS_URL; use env or target');
      return s.url;
    },
    get env() {
      const s = known();
      return { REDIS_URL: s.url, ...(s.clusterNodes === undefined ? {} : { REDIS_CLUSTER_NODES: s.clusterNodes.join(',') }), QUEUE_PREFIX: prefix };
    },
    get target() {
      const s = known();
      return { redisUrl: s.url, redisClusterNodes: s.clusterNodes };
    },
    get prefix() {
      return prefix;
    },
    get admin() {
      if (admin === undefined) throw new Error('useRedis(): admin is ready once beforeAll has run');
      return admin;
    },
    client(options = {}) {
      const c = connect(known(), { connectionName: `${prefix}:test`, ...options });
      clients.push(c);
      return c;
    },
    keys(pattern) {
      return scanKeys(admin as TestRedis, pattern);
    },
    async openConnections() {
      return (await connectionsNamed(admin as TestRedis, prefix)).map((c) => c.name);
    },
  };
}

async function connectionsNamed(admin: TestRedis, prefix: string, settle = false): Promise<{ id: string; name: string; node: Redis }[]> {
  // A connection whose QUIT is still in flight can linger for a moment: when settling, look again for up to 1 s.
  for (let attempt = 0; ; attempt += 1) {
    const lists = await Promise.all(everyNode(admin).map(async (node) => ({ node, list: (await node.client('LIST')) as string })));
    const found = lists
      .flatMap(({ node, list }) =>
        list.split('\n').map((line) => ({ id: /\bid=(\d+)/.exec(line)?.[1] ?? '', name: /\bname=(\S*)/.exec(line)?.[1] ?? '', node })),
      )
      .filter((c) => c.name.includes(prefix));
    if (found.length === 0 || !settle || attempt === 20) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function deleteKeys(admin: TestRedis, pattern: string): Promise<void> {
  // One key at a time on a cluster: keys of different slots may not share a command.
  const keys = await scanKeys(admin, pattern);
  if (admin instanceof Cluster) await Promise.all(keys.map((k) => admin.unlink(k)));
  else if (keys.length > 0) await admin.unlink(...keys);
}

async function scanKeys(admin: TestRedis, pattern: string): Promise<string[]> {
  const masters = admin instanceof Cluster ? admin.nodes('master') : [admin];
  const perMaster = await Promise.all(
    masters.map(async (node) => {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0');
      return keys;
    }),
  );
  return perMaster.flat();
}
