import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { bullKeys, delayedDueAt, LocationQueues, locationKeysPattern, locationOfWorkKey, nextWaitingSince } from './queues.ts';

describe('LocationQueues: one queue object per location, the latest kept', () => {
  const redis = useRedis();

  it("reuses a location's queue object, and past `max` closes the least recently used idle one, never one in use", async () => {
    const inUse = new Set(['a']);
    const queues = new LocationQueues({ connection: redis.client(), prefix: redis.prefix, max: 2, inUse: (id) => inUse.has(id) });
    try {
      const a = queues.get('a');
      const b = queues.get('b');
      expect(queues.get('a')).toBe(a);
      expect(queues.get('b')).toBe(b); // b is now the latest, a the least recent but in use
      const c = queues.get('c');
      expect(queues.size).toBe(2);
      expect(queues.get('a')).toBe(a); // in use: kept
      expect(queues.get('c')).toBe(c);
      expect(queues.get('b')).not.toBe(b); // evicted (and closed): a new object
      expect(b.closing).toBeDefined();
    } finally {
      await queues.close();
    }
  });

  it('`with`: the cached object if there is one, otherwise one built for the call and closed after', async () => {
    const queues = new LocationQueues({ connection: redis.client(), prefix: redis.prefix });
    try {
      const cached = queues.get('a');
      expect(await queues.with('a', (q) => Promise.resolve(q))).toBe(cached);
      const once = await queues.with('b', (q) => Promise.resolve(q));
      expect(once.closing).toBeDefined();
      expect(queues.size).toBe(1);
    } finally {
      await queues.close();
    }
  });

  it("builds with the options given (the dispatcher's worker options) and reports errors with the location", () => {
    const errors: string[] = [];
    const queues = new LocationQueues({
      connection: redis.client(),
      prefix: redis.prefix,
      queue: { skipVersionCheck: true, lockDuration: 2_000 },
      onError: (_error, locationId) => errors.push(locationId),
    });
    const q = queues.get('a');
    expect(q.opts).toMatchObject({ prefix: redis.prefix, skipVersionCheck: true, lockDuration: 2_000 });
    q.emit('error', new Error('boom'));
    expect(errors).toEqual(['a']);
    return queues.close();
  });
});

describe('nextWaitingSince: how long the head of each line has waited', () => {
  const redis = useRedis();

  it("the earliest enqueue time of the job each location's queue takes next, live (wait list) and backfill (prioritized) apart", async () => {
    const queues = new LocationQueues({ connection: redis.client(), prefix: redis.prefix });
    try {
      const add = (id: string, jobId: string, timestamp: number, backfill: boolean) =>
        queues.get(id).add('m', {}, { jobId, timestamp, ...(backfill ? { priority: 1 } : {}) });
      await add('a', 'a1', 2_000, false);
      await add('a', 'a2', 1_000, false); // after a1 in line, though enqueued "earlier"
      await add('a', 'a3', 9_000, true);
      await add('a', 'a4', 3_000, true);
      await add('b', 'b1', 1_500, false);
      const client = redis.client();
      expect(await nextWaitingSince(client, redis.prefix, ['a', 'b', 'nothing-here'])).toEqual({ live: 1_500, backfill: 9_000 });
      expect(await nextWaitingSince(client, redis.prefix, ['a'])).toEqual({ live: 2_000, backfill: 9_000 });
      expect(await nextWaitingSince(client, redis.prefix, ['nothing-here'])).toEqual({});
      expect(await nextWaitingSince(client, redis.prefix, [])).toEqual({});
      // Taken: the next in line is the head.
      await queues.get('a').remove('a1');
      expect(await nextWaitingSince(client, redis.prefix, ['a'])).toEqual({ live: 1_000, backfill: 9_000 });
    } finally {
      await queues.close();
    }
  });
});

describe("BullMQ's key layout, read in one place", () => {
  it("names a location queue's keys as BullMQ does", () => {
    expect(bullKeys('p', 'loc1').toKey('wait')).toBe('p:loc.{loc1}:wait');
    expect(bullKeys('p', 'loc1').toKey('delayed')).toBe('p:loc.{loc1}:delayed');
    expect(bullKeys('p', 'loc1').job('k7')).toBe('p:loc.{loc1}:k7');
  });

  it("a delayed job's score is its due time × 4096 plus a counter", () => {
    expect(delayedDueAt(1_700_000_000_000 * 4096 + 17)).toBe(1_700_000_000_000);
    expect(delayedDueAt(String(1_700_000_000_000 * 4096))).toBe(1_700_000_000_000);
  });

  it.each([
    ['p:loc.{loc1}:wait', 'loc1'],
    ['p:loc.{loc-2_x}:delayed', 'loc-2_x'],
    ['p:loc.{loc1}:completed', undefined], // no work left
    ['p:loc.{loc1}:123', undefined], // a job hash
    ['p:ledger:{loc1}:k', undefined],
  ])('%s: a work key of %s', (key, id) => {
    expect(locationOfWorkKey('p', key)).toBe(id);
  });

  it('escapes the prefix in the SCAN pattern', () => {
    expect(locationKeysPattern('a*b')).toBe('a\\*b:loc.{*}:*');
  });
});
