import { useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { keysFor, locationQueueName } from '../keys.ts';
import { dayIndex } from '../rate-budget.ts';
import { budgetKeys, LocationReader, ProducerLocations, type SavedLog } from './index.ts';

describe('snapshot: every field read from its own replies', () => {
  const redis = useRedis();

  it('a location with jobs, outcomes, spending, a hold and a place; another with nothing', async () => {
    const c = redis.client();
    const q = new Queue(locationQueueName('a'), { connection: c, prefix: redis.prefix });
    await q.addBulk([1, 2, 3].map((n) => ({ name: 'm', data: { n }, opts: { jobId: `a-${n}` } })));
    await q.add('m', { n: 4 }, { jobId: 'a-4', delay: 60_000 });
    await q.close();
    const stats = keysFor(redis.prefix).stats('a');
    await redis.admin.hset(stats, {
      delivered: '7',
      skipped: '2',
      dead: '1',
      'lookup-found': '3',
      'lookup-undecided': '1',
      'contact-found': '4',
      'contact-created': '5',
      uploads: '6',
    });
    // The budget as its last holder saved it: two requests of ours and one of another app's count until `far`.
    const bk = budgetKeys(redis.prefix, 'a');
    const far = Date.now() + 60_000;
    const saved: SavedLog = {
      v: 1,
      counted: [far, far],
      others: [far],
      block: far,
      probe: true,
      outage: 0,
      learned: { max: 50 },
      sharedUntil: 0,
      day: 0,
      dailyUsed: 0,
    };
    await redis.admin.hset(bk.state, { log: JSON.stringify(saved), open: '0' });
    await redis.admin.hset(bk.daily, String(dayIndex(Date.now(), 0)), '12');
    const producer = new ProducerLocations(c, { prefix: redis.prefix });
    await producer.markReady(['a'], false);
    await producer.pause('a', 'token rejected');

    const reader = new LocationReader(c, { prefix: redis.prefix, budget: () => ({ max: 100, windowMs: 10_000, daily: 1_000 }) });
    const [a, b] = await reader.snapshot(['a', 'b']);
    expect(a).toMatchObject({
      locationId: 'a',
      waiting: 3,
      active: 0,
      delayed: 1,
      failed: 0,
      paused: true,
      hold: { state: 'paused', reason: 'token rejected' },
      delivered: 7,
      skipped: 2,
      dead: 1,
      lookups: { found: 3, absent: 0, undecided: 1 },
      contacts: { found: 4, created: 5 },
      uploads: 6,
      sentInWindow: 3,
      budget: { max: 50, windowMs: 10_000, daily: 1_000 },
      dailyUsed: 12,
      blockedUntil: far,
      held: false,
    });
    expect(a?.dueAt).toBeTypeOf('number');
    expect(b).toEqual({
      locationId: 'b',
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 0,
      paused: false,
      hold: undefined,
      delivered: 0,
      skipped: 0,
      dead: 0,
      lookups: { found: 0, absent: 0, undecided: 0 },
      contacts: { found: 0, created: 0 },
      uploads: 0,
      sentInWindow: 0,
      budget: { max: 100, windowMs: 10_000, daily: 1_000 },
      dailyUsed: 0,
      blockedUntil: 0,
      dueAt: undefined,
      held: false,
    });
  });
});
