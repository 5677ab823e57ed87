import { useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { locationQueueName } from '../keys.ts';
import { holdKeys } from './holds.ts';
import { LocationReader, WorkerLocations } from './index.ts';
import { repairKeys } from './repair.ts';

const limiter = { budget: () => ({ max: 100, windowMs: 10_000, daily: 200_000 }), inflightMs: 5_000 };

describe('repair after Redis lost writes', () => {
  const redis = useRedis();
  const state = () => new WorkerLocations(redis.client(), { prefix: redis.prefix, limiter, ledgerTtlMs: 60_000 });

  it('after Redis lost writes (restart, failover): locations with jobs get back their place, registry entry and hold listing, once', async () => {
    const s = state();
    const add = async (locationId: string, delay = 0) => {
      const q = new Queue(locationQueueName(locationId), { connection: redis.client(), prefix: redis.prefix });
      await q.add('m', { n: 1 }, { jobId: `${locationId}-1`, ...(delay > 0 ? { delay } : {}) });
      await q.close();
    };
    // What the loss left: jobs on each location's own master; of the shared structures only b's place.
    await add('a');
    await add('b');
    await add('c', 60_000); // a retry, due later
    await add('p');
    await s.pause('p', 'token rejected');
    await s.markReady(['b'], false);
    await redis.admin.srem(holdKeys(redis.prefix).held, 'p');
    const bDue = await s.dueInMs('b');

    const report = await s.repairAfterLoss();
    expect(report).toMatchObject({ withWork: 4, requeued: 2, held: 1 });
    expect(await s.dueInMs('a')).toBe(0);
    expect(await s.dueInMs('c')).toBe(0); // taken now: the worker finds the retry not due and waits it out
    expect(await s.dueInMs('b')).toBe(bDue);
    expect(await s.dueInMs('p')).toBeUndefined(); // paused: it waits for resume
    expect(await new LocationReader(redis.client(), { prefix: redis.prefix }).known()).toEqual(['a', 'b', 'c', 'p']);
    expect(await redis.admin.sismember(holdKeys(redis.prefix).held, 'p')).toBe(1);
    // Recorded: the next check, by this process or another, does nothing until Redis changes again.
    expect(await Promise.all([s.repairAfterLoss(), state().repairAfterLoss()])).toEqual([undefined, undefined]);
    await redis.admin.set(repairKeys(redis.prefix).redisRun, 'a-run-before-the-failover');
    const [one, other] = await Promise.all([s.repairAfterLoss(), state().repairAfterLoss()]);
    expect([one, other].filter((r) => r !== undefined)).toHaveLength(1); // one process at a time
  });
});
