/**
 * The one way integration tests get Redis. Per test file: `REDIS_URL` if set; else a
 * `redis-server` from PATH on a free port; else a testcontainers Redis (machines with Docker).
 * Per test: a fresh random prefix; afterwards every key under it is deleted, and the test
 * fails if any connection named with it (ours or BullMQ's) is still open: a leaked worker.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { RedisServer } from './redis-server.ts';

export interface RedisTestContext {
  /** The Redis every connection of this file should use. */
  readonly url: string;
  /** This test's key prefix (`t-xxxxxxxx`): pass it as the product's QUEUE_PREFIX. */
  readonly prefix: string;
  /** A connection named with this test's prefix, closed for you after the test. */
  client(options?: RedisOptions): Redis;
  /** Connections still open under this test's prefix, by name (for assertions mid-test). */
  openConnections(): Promise<string[]>;
  /** An unshared admin connection (not counted as a leak). */
  readonly admin: Redis;
}

type Source = { url: string; stop: () => Promise<void> };

async function acquireRedis(): Promise<Source> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv !== undefined && fromEnv !== '') return { url: fromEnv, stop: () => Promise.resolve() };
  if (hasBinary('redis-server')) {
    const server = await RedisServer.start();
    return { url: server.url, stop: () => server.stop() };
  }
  // No binary: a machine with Docker can still run the suite.
  const { RedisContainer } = await import('@testcontainers/redis');
  const container = await new RedisContainer('redis:7-alpine').start();
  return {
    url: container.getConnectionUrl(),
    stop: async () => {
      await container.stop();
    },
  };
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
  let admin: Redis | undefined;
  let prefix = '';
  let clients: Redis[] = [];

  beforeAll(async () => {
    source = await acquireRedis();
    admin = new Redis(source.url, { connectionName: 'ghl-test-admin', maxRetriesPerRequest: 3 });
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
    const a = admin as Redis;
    const leaked = await connectionsNamed(a, prefix, true);
    for (const { id } of leaked) await a.client('KILL', 'ID', id);
    await deleteKeys(a, `${prefix}*`);
    if (leaked.length > 0) {
      throw new Error(
        `leaked ${leaked.length} Redis connection(s) under ${prefix}: ${leaked.map((c) => c.name).join(', ')} ` + '(a worker, queue or client was not closed)',
      );
    }
  });

  return {
    get url() {
      if (source === undefined) throw new Error('useRedis(): the url is known once beforeAll has run');
      return source.url;
    },
    get prefix() {
      return prefix;
    },
    get admin() {
      if (admin === undefined) throw new Error('useRedis(): admin is ready once beforeAll has run');
      return admin;
    },
    client(options = {}) {
      const c = new Redis((source as Source).url, { connectionName: `${prefix}:test`, ...options });
      clients.push(c);
      return c;
    },
    async openConnections() {
      return (await connectionsNamed(admin as Redis, prefix)).map((c) => c.name);
    },
  };
}

async function connectionsNamed(admin: Redis, prefix: string, settle = false): Promise<{ id: string; name: string }[]> {
  // A connection whose QUIT is still in flight can linger for a moment: when settling, look again for up to 1 s.
  for (let attempt = 0; ; attempt += 1) {
    const list = (await admin.client('LIST')) as string;
    const found = list
      .split('\n')
      .map((line) => ({ id: /\bid=(\d+)/.exec(line)?.[1] ?? '', name: /\bname=(\S*)/.exec(line)?.[1] ?? '' }))
      .filter((c) => c.name.includes(prefix));
    if (found.length === 0 || !settle || attempt === 20) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function deleteKeys(admin: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.unlink(...keys);
  } while (cursor !== '0');
}
