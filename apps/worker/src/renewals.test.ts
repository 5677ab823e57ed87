import { budgetKeys, createLogger, LocationQueues, WorkerLocations, type Lease } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { LocationJobs } from './location-jobs.ts';
import { Renewals, type Holding } from './renewals.ts';

const limiter = { budget: () => ({ max: 100, windowMs: 10_000, daily: 200_000 }), inflightMs: 5_000 };

describe('Renewals (on a real Redis)', () => {
  const redis = useRedis();

  it("a turn that ends while its lease renews: the renewal's save lands first, and the budget is left closed", async () => {
    const state = new WorkerLocations(redis.client(), { prefix: redis.prefix, limiter, ledgerTtlMs: 60_000 });
    const queues = new LocationQueues({ connection: redis.client(), prefix: redis.prefix });
    await state.markReady(['a'], false);
    const [lease] = (await state.claim(1, 30_000)).leases as [Lease];
    const budget = state.budgets.hold('a', Number(lease.lease));
    const holding: Holding = { lease, jobs: new LocationJobs(queues.get('a'), 'test'), active: new Map(), leaseBound: Infinity, budget };
    // The renewal pauses between renewing the lease and saving the budget, as a busy process may.
    let paused!: () => void;
    const renewed = new Promise<void>((resolve) => (paused = resolve));
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    const renewals = new Renewals({
      state: {
        renewLease: async (l, ms) => {
          const ok = await state.renewLease(l, ms);
          paused();
          await resumed;
          return ok;
        },
      },
      budgets: state.budgets,
      lockMs: 30_000,
      logger: createLogger('silent', 'test'),
      holdings: () => [holding],
      onLost: () => {
        throw new Error('not lost');
      },
    });
    const renewal = renewals.renewAll();
    await renewed;
    // The turn ends now: it waits for the renewal under way, then closes the budget.
    let released = false;
    const release = renewals.release(holding).then(() => (released = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(released).toBe(false);
    resume();
    await Promise.all([renewal, release]);
    expect(await state.budgets.close(await budget)).toBe(true);
    await state.endLease(lease, { mode: 'idle' });
    expect(await redis.admin.hget(budgetKeys(redis.prefix, 'a').state, 'open')).toBe('0');
    // A renewal after the release leaves the holding alone.
    await renewals.renewAll();
    expect(await redis.admin.hget(budgetKeys(redis.prefix, 'a').state, 'open')).toBe('0');
    // The next holder does not take it for a lapse.
    await state.markReady(['a'], false);
    const [next] = (await state.claim(1, 30_000)).leases as [Lease];
    expect((await state.budgets.hold('a', Number(next.lease))).lapsed).toBe(false);
    await queues.close();
  });
});
