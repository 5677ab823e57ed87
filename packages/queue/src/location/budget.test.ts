import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { redisNow } from './redis-time.ts';
import { budgetKeys, Budgets, type BudgetSettings } from './budget.ts';
import { LocationReader } from './index.ts';

// Unpaced, so that the handover's arithmetic reads plainly (pacing: budget-log.test.ts).
const SETTINGS: BudgetSettings = { budget: () => ({ max: 3, windowMs: 2_000, daily: 100 }), inflightMs: 5_000, resetOffsetMs: 0, pace: false };

describe('Budgets: a location budget handed from holder to holder (Lua, on a real Redis)', () => {
  const redis = useRedis();
  const budgets = (runId = 'run-1') => new Budgets(redis.client(), redis.prefix, SETTINGS, () => runId);
  const leaseEnd = async () => (await redisNow(redis.admin)) + 30_000;

  it('a turn that ends hands its log to the next holder: what it sent still counts there', async () => {
    const first = await budgets().hold('a', await leaseEnd());
    expect(['s1', 's2'].map((s) => first.take(s, false).kind)).toEqual(['go', 'go']);
    expect(['s1', 's2'].map((s) => first.proceed(s).kind)).toEqual(['go', 'go']);
    first.answered('s1', undefined, 'up');
    first.answered('s2', undefined, 'up');
    expect(await budgets().close(first)).toBe(true);

    const next = await budgets().hold('a', await leaseEnd());
    expect(next.view().counted).toBe(2);
    expect(next.take('s3', false).kind).toBe('go');
    expect(next.proceed('s3').kind).toBe('go');
    // The fourth would be over the budget of 3 in a window: it is reserved for when one frees.
    expect(next.take('s4', false)).toMatchObject({ kind: 'reserved' });
    // status reads the same log.
    await budgets().close(next);
    const [seen] = await new LocationReader(redis.client(), { prefix: redis.prefix, budget: SETTINGS.budget }).snapshot(['a']);
    expect(seen).toMatchObject({ sentInWindow: 3, dailyUsed: 4 });
  });

  it("a holder that lapsed (it never ended its turn): the next one waits until its lease end, plus a request's life, plus a window", async () => {
    const end = await leaseEnd();
    const lapsed = await budgets().hold('b', end);
    lapsed.take('s1', false);
    lapsed.proceed('s1');
    const next = await budgets().hold('b', await leaseEnd());
    const took = next.take('s2', true);
    expect(took.kind).toBe('wait');
    const waitMs = took.kind === 'wait' ? took.waitMs : 0;
    const expected = end + SETTINGS.inflightMs + 2_000 - (await redisNow(redis.admin));
    expect(Math.abs(waitMs - expected)).toBeLessThan(100);
  });

  it("a lapsed holder that wakes up cannot save over the next holder's budget", async () => {
    const lapsed = await budgets().hold('c', await leaseEnd());
    const next = await budgets().hold('c', await leaseEnd());
    expect(await budgets().save(lapsed, await leaseEnd())).toBe(false);
    expect(await budgets().close(lapsed)).toBe(false);
    expect(await budgets().save(next, await leaseEnd())).toBe(true);
  });

  it('a log saved under another Redis run (writes since may be lost) is not trusted: the next holder waits as after a lapse', async () => {
    const first = await budgets('run-1').hold('d', await leaseEnd());
    first.take('s1', false);
    first.proceed('s1');
    first.answered('s1', undefined, 'up');
    await budgets('run-1').close(first);
    const next = await budgets('run-2').hold('d', await leaseEnd());
    expect(next.take('s2', false)).toMatchObject({ kind: 'wait' });
    // Under the run it was saved in, the same log is trusted.
    const again = await budgets('run-2').hold('e', await leaseEnd());
    await budgets('run-2').close(again);
    expect((await budgets('run-2').hold('e', await leaseEnd())).take('s3', false).kind).toBe('go');
  });

  it("the day's count is saved to the daily hash, and the larger of the two wins on load", async () => {
    const first = await budgets().hold('f', await leaseEnd());
    first.take('s1', false);
    await budgets().close(first);
    const k = budgetKeys(redis.prefix, 'f');
    const day = Object.keys(await redis.admin.hgetall(k.daily))[0] ?? '';
    expect(await redis.admin.hget(k.daily, day)).toBe('1');
    // HighLevel's headers, seen by an earlier process, said more was spent today.
    await redis.admin.hset(k.daily, day, '100');
    const next = await budgets().hold('f', await leaseEnd());
    expect(next.take('s2', false)).toMatchObject({ kind: 'parked' });
  });
});
