import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.ts';
import { useRedis } from './use-redis.ts';

describe('useRedis', () => {
  const redis = useRedis();
  let previousPrefix = '';

  it('gives each test a fresh prefix and a working connection', async () => {
    expect(redis.prefix).toMatch(/^t-[0-9a-f]{10}$/);
    previousPrefix = redis.prefix;
    const c = redis.client();
    await c.set(`${redis.prefix}:k`, 'v');
    expect(await c.get(`${redis.prefix}:k`)).toBe('v');
  });

  it('deleted the previous test keys and uses another prefix', async () => {
    expect(redis.prefix).not.toBe(previousPrefix);
    expect(await redis.admin.keys(`${previousPrefix}*`)).toEqual([]);
  });

  it('sees connections named with the prefix, and not once they are closed', async () => {
    const c = new Redis(redis.url, { connectionName: `${redis.prefix}:mine` });
    await c.ping();
    expect(await redis.openConnections()).toEqual([`${redis.prefix}:mine`]);
    await c.quit();
    await expect.poll(() => redis.openConnections()).toEqual([]);
  });
});

describe('RedisServer', () => {
  it('keeps what the AOF synced across a SIGKILL and restart', async () => {
    const server = await RedisServer.start({ appendfsync: 'always' });
    try {
      const c = new Redis(server.url, { maxRetriesPerRequest: null });
      c.on('error', () => undefined);
      await c.set('kept', '1');
      await server.kill();
      expect(server.running).toBe(false);
      await server.restart();
      expect(await c.get('kept')).toBe('1');
      await c.quit();
    } finally {
      await server.stop();
    }
  });

  it('without AOF, a restart starts empty', async () => {
    const server = await RedisServer.start();
    try {
      const c = new Redis(server.url, { maxRetriesPerRequest: null });
      c.on('error', () => undefined);
      await c.set('lost', '1');
      await server.restart();
      expect(await c.get('lost')).toBeNull();
      await c.quit();
    } finally {
      await server.stop();
    }
  });
});
