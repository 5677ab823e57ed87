/** A token must never reach Redis (keys or values), logs, or dead-letter records. */
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, TOKENS, useHarness } from './harness.ts';

describe('secrets', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  it('no token in any Redis key or value, log line or dead-letter record after a full run', async () => {
    const h = await harness({ fake: { maxMessageChars: 9, faults: { status503: 0.2 } }, env: { LOG_LEVEL: 'debug' } });
    h.fake.configure({ tokens: { [TOKENS.locC]: null } }); // locC gets 401s and pauses
    await h.worker();
    await h.send([
      ...Array.from({ length: 20 }, (_, i) => sms(i, 'locA')),
      sms(1, 'locB', { message: 'far too long for the stand-in' }), // 422: dead-lettered
      sms(1, 'locC'),
    ]);
    await h.settled(['locA', 'locB']);
    const secrets = Object.values(TOKENS);

    const found: string[] = [];
    const keys = await redis.keys(`${redis.prefix}*`); // every master's, on a cluster
    expect(keys.length).toBeGreaterThan(10);
    for (const key of keys) {
      const type = await redis.admin.type(key);
      const value =
        type === 'string'
          ? await redis.admin.get(key)
          : type === 'hash'
            ? JSON.stringify(await redis.admin.hgetall(key))
            : type === 'list'
              ? JSON.stringify(await redis.admin.lrange(key, 0, -1))
              : type === 'set'
                ? JSON.stringify(await redis.admin.smembers(key))
                : type === 'zset'
                  ? JSON.stringify(await redis.admin.zrange(key, 0, -1))
                  : type === 'stream'
                    ? JSON.stringify(await redis.admin.xrange(key, '-', '+'))
                    : '';
      for (const s of secrets) if (key.includes(s) || (value ?? '').includes(s)) found.push(key);
    }
    expect(found).toEqual([]);

    const logs = h.logs.join('');
    expect(logs.length).toBeGreaterThan(1000);
    for (const s of secrets) expect(logs).not.toContain(s);
    const dead = JSON.stringify(await h.deadLettered());
    expect(dead).toContain('message must be shorter');
    for (const s of secrets) expect(dead).not.toContain(s);
  });
});
