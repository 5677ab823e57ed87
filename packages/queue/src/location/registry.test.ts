import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { holdKeys } from './holds.ts';
import { ProducerLocations, WorkerLocations } from './index.ts';
import type { Lease } from './ready-set.ts';

const limiter = { budget: () => ({ max: 100, windowMs: 10_000, daily: 200_000 }), inflightMs: 5_000 };

describe('the registry and the locations at work', () => {
  const redis = useRedis();
  const state = () => new WorkerLocations(redis.client(), { prefix: redis.prefix, limiter, ledgerTtlMs: 60_000 });
  /** Claims one location, which must be due. */
  const claimOne = async (s: WorkerLocations, leaseMs = 5_000): Promise<Lease> => {
    const [lease] = (await s.claim(1, leaseMs)).leases;
    if (lease === undefined) throw new Error('nothing was due');
    return lease;
  };

  it('active(): the locations at work (due, leased, paused, parked), not every location known', async () => {
    const s = state();
    await new ProducerLocations(redis.client(), { prefix: redis.prefix }).register(['idle1', 'idle2', 'due', 'leased', 'paused', 'parked']);
    await s.markReady(['leased'], false);
    const lease = await claimOne(s);
    await s.markReady(['due'], false);
    await s.pause('paused', 'token rejected');
    await s.park('parked', Date.now() + 60_000, 'daily budget spent');
    expect(await s.knownCount()).toBe(6);
    expect(await s.active()).toEqual(['due', 'leased', 'parked', 'paused']);
    await s.resume('paused');
    await s.endLease(lease, { mode: 'idle' });
    // Resumed: due now (no longer held); the leased location's turn ended with nothing left.
    expect(await redis.admin.sismember(holdKeys(redis.prefix).held, 'paused')).toBe(0);
    expect(await s.active()).toEqual(['due', 'parked', 'paused']);
  });
});
