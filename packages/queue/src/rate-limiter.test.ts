import { randomUUID } from 'node:crypto';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { DeliveryLedger } from './ledger.ts';
import type { Budget } from './rate-budget.ts';
import { RateLimiter, rateKeys, type Acquired } from './rate-limiter.ts';

describe('RateLimiter (Lua, on a real Redis)', () => {
  const redis = useRedis();
  const budget: Budget = { max: 3, windowMs: 1000, daily: 1000 };

  function limiter(b: Budget = budget, extra: { inflightMs?: number; horizonMs?: number; resetOffsetMs?: number } = {}) {
    return new RateLimiter(redis.client(), {
      prefix: redis.prefix,
      budget: () => b,
      inflightMs: extra.inflightMs ?? 500,
      resetOffsetMs: extra.resetOffsetMs ?? 0,
      ledgerTtlMs: 60_000,
      ...(extra.horizonMs === undefined ? {} : { horizonMs: () => extra.horizonMs as number }),
    });
  }
  const acquire = (l: RateLimiter, key = randomUUID()) => l.acquire('loc', key, randomUUID());
  const sendIn = (a: Acquired) => (a.kind === 'reserved' ? a.sendInMs : -1);

  it('lets max requests go at once, then schedules the next for when a slot is expected to free', async () => {
    const l = limiter();
    const first = await Promise.all([1, 2, 3].map(() => acquire(l)));
    expect(first.map(sendIn)).toEqual([0, 0, 0]);
    // Unanswered requests, before any answer taught a latency, are expected back at once, then count one window.
    const fourth = await acquire(l);
    expect(sendIn(fourth)).toBeGreaterThan(900);
    expect(sendIn(fourth)).toBeLessThanOrEqual(1000);
  });

  it('counts an answered request until one window after its answer', async () => {
    const l = limiter();
    const slots = await Promise.all([1, 2, 3].map(() => acquire(l)));
    for (const s of slots) if (s.kind === 'reserved') await l.settle('loc', 'k', s.slot, undefined);
    const next = await acquire(l);
    expect(sendIn(next)).toBeGreaterThan(900);
    expect(sendIn(next)).toBeLessThanOrEqual(1000);
  });

  it('schedules reservations one after another', async () => {
    const l = limiter({ max: 2, windowMs: 1000, daily: 1000 }, { horizonMs: 10_000 });
    const sent = [await acquire(l), await acquire(l)];
    for (const s of sent) if (s.kind === 'reserved') await l.settle('loc', 'k', s.slot, undefined);
    const times = [];
    for (let i = 0; i < 6; i += 1) times.push(sendIn(await acquire(l)));
    // The first answers came back at once, so the learned latency is ~0: pairs at ~1000, ~2000, ~3000.
    const expected = [1000, 1000, 2000, 2000, 3000, 3000];
    times.forEach((t, i) => {
      expect(t).toBeGreaterThan((expected[i] as number) - 60);
      expect(t).toBeLessThanOrEqual((expected[i] as number) + 5);
    });
  });

  it('the gate lets a reserved request go only while fewer than max count', async () => {
    const l = limiter({ max: 1, windowMs: 1000, daily: 1000 }, { inflightMs: 5000 });
    const a = await acquire(l);
    const b = await acquire(l);
    if (a.kind !== 'reserved' || b.kind !== 'reserved') throw new Error('expected reservations');
    expect(a.sendInMs).toBe(0);
    // a is still in flight (slow), so b may not go, whatever its schedule said.
    const early = await l.proceed('loc', b.slot);
    expect(early.kind).toBe('later');
    await l.settle('loc', 'k', a.slot, undefined);
    const later = await l.proceed('loc', b.slot);
    expect(later.kind).toBe('later');
    expect(later.kind !== 'go' && later.waitMs).toBeGreaterThan(900);
    await redis.admin.del(rateKeys(redis.prefix, 'loc').answered); // the window passes
    expect((await l.proceed('loc', b.slot)).kind).toBe('go');
    expect(await redis.admin.zcard(rateKeys(redis.prefix, 'loc').inflight)).toBe(1);
  });

  it('says wait instead of reserving past the horizon', async () => {
    const l = limiter({ max: 1, windowMs: 1000, daily: 1000 }, { horizonMs: 1500 });
    expect(sendIn(await acquire(l))).toBe(0);
    expect(sendIn(await acquire(l))).toBeGreaterThan(900);
    const third = await acquire(l);
    expect(third.kind).toBe('wait');
  });

  it('answers from the delivery ledger without reserving', async () => {
    const l = limiter();
    await new DeliveryLedger(redis.client(), redis.prefix, 60_000).record('loc', 'k-done', { messageId: 'm1', at: 42 });
    expect(await l.acquire('loc', 'k-done', 's')).toEqual({ kind: 'delivered', entry: { messageId: 'm1', at: 42 } });
    expect(await redis.admin.exists(rateKeys(redis.prefix, 'loc').inflight)).toBe(0);
  });

  it('takes nothing for a job whose lock is not the token given (another worker holds it, or it lapsed)', async () => {
    const l = limiter();
    const lock = { key: `${redis.prefix}:loc.{loc}:job-1:lock`, token: 'ours' };
    await redis.client().set(lock.key, 'ours', 'PX', 10_000);
    // In one batch: ours, another's, and a lapsed one; each decided on its own.
    const [mine, theirs, lapsed] = await Promise.all([
      l.acquire('loc', 'k1', 's1', lock),
      l.acquire('loc', 'k2', 's2', { key: lock.key, token: 'someone-else' }),
      l.acquire('loc', 'k3', 's3', { key: `${redis.prefix}:loc.{loc}:job-3:lock`, token: 'ours' }),
    ]);
    expect(mine).toEqual({ kind: 'reserved', slot: 's1', sendInMs: 0 });
    expect(theirs).toEqual({ kind: 'lock-lost' });
    expect(lapsed).toEqual({ kind: 'lock-lost' });
    expect(await redis.admin.zrange(rateKeys(redis.prefix, 'loc').inflight, 0, -1)).toEqual(['s1']);
  });

  it('writes the ledger on settle', async () => {
    const l = limiter();
    const a = await l.acquire('loc', 'k-new', 's1');
    await l.settle('loc', 'k-new', 's1', undefined, { messageId: 'm9', at: 7 });
    expect(a.kind).toBe('reserved');
    expect(await new DeliveryLedger(redis.client(), redis.prefix, 1).get('loc', 'k-new')).toEqual({ messageId: 'm9', at: 7 });
  });

  it('a 429 makes the location wait, in every process, and gives the slot back', async () => {
    const l = limiter({ max: 1, windowMs: 1000, daily: 1000 });
    const other = limiter({ max: 1, windowMs: 1000, daily: 1000 });
    const a = await acquire(l);
    const reserved = await acquire(l);
    if (a.kind !== 'reserved' || reserved.kind !== 'reserved') throw new Error('expected reservations');
    expect(await l.refuse('loc', a.slot, 700)).toBeGreaterThan(650);
    const b = await acquire(other);
    expect(b.kind).toBe('wait');
    expect(b.kind === 'wait' && b.waitMs).toBeGreaterThan(600);
    // A request that was reserved before the 429 checks again before it goes, and waits too.
    const gate = await l.proceed('loc', reserved.slot);
    expect(gate.kind).toBe('wait');
    expect(gate.kind !== 'go' && gate.waitMs).toBeGreaterThan(600);
    const k = rateKeys(redis.prefix, 'loc');
    expect((await redis.admin.zcard(k.inflight)) + (await redis.admin.zcard(k.reserved))).toBe(0);
  });

  it('after a 429, one request probes first and the rest wait for its answer', async () => {
    const l = limiter({ max: 10, windowMs: 1000, daily: 1000 });
    const a = await acquire(l);
    if (a.kind !== 'reserved') throw new Error('expected a reservation');
    await l.refuse('loc', a.slot, 1);
    await new Promise((r) => setTimeout(r, 5));
    const probe = await acquire(l);
    expect(sendIn(probe)).toBe(0);
    const held = await acquire(l);
    expect(held).toEqual({ kind: 'wait', waitMs: 50 });
    if (probe.kind !== 'reserved') throw new Error('expected the probe to go');
    await l.settle('loc', 'k', probe.slot, { remaining: 8, max: 10 });
    expect(sendIn(await acquire(l))).toBe(0);
  });

  it('parks a location whose daily budget is spent, until the next reset', async () => {
    const l = limiter({ max: 100, windowMs: 1000, daily: 2 });
    await acquire(l);
    await acquire(l);
    const parked = await acquire(l);
    expect(parked.kind).toBe('parked');
    if (parked.kind !== 'parked') return;
    expect(new Date(parked.until).toISOString()).toMatch(/T00:00:00\.000Z$/);
    expect(parked.until).toBeGreaterThan(Date.now());
    expect(parked.waitMs).toBeLessThanOrEqual(86_400_000);
  });

  it('learns from X-RateLimit-Remaining that others spend the location', async () => {
    const l = limiter({ max: 10, windowMs: 1000, daily: 1000 });
    const a = await acquire(l);
    if (a.kind !== 'reserved') throw new Error('expected a reservation');
    // HighLevel says 2 left: 8 used, 1 of them ours, so 7 by others.
    await l.settle('loc', 'k', a.slot, { remaining: 2, max: 10 });
    expect(await redis.admin.zcard(rateKeys(redis.prefix, 'loc').others)).toBe(7);
    expect([sendIn(await acquire(l)), sendIn(await acquire(l))]).toEqual([0, 0]);
    expect(sendIn(await acquire(l))).toBeGreaterThan(900);
  });

  it('adopts a lower X-RateLimit-Max and a longer interval, and the daily count HighLevel reports', async () => {
    const l = limiter({ max: 10, windowMs: 1000, daily: 1000 });
    const a = await acquire(l);
    if (a.kind !== 'reserved') throw new Error('expected a reservation');
    await l.settle('loc', 'k', a.slot, { max: 2, intervalMs: 3000, remaining: 1, daily: 1000, dailyRemaining: 0 });
    expect(await redis.admin.hgetall(rateKeys(redis.prefix, 'loc').learned)).toMatchObject({ max: '2', windowMs: '3000' });
    expect((await acquire(l)).kind).toBe('parked');
  });

  it('release gives back an unused reservation and its daily count', async () => {
    const l = limiter({ max: 1, windowMs: 1000, daily: 1 });
    const a = await acquire(l);
    if (a.kind !== 'reserved') throw new Error('expected a reservation');
    await l.release('loc', a.slot);
    expect(sendIn(await acquire(l))).toBe(0);
  });

  it('keeps each location to its own budget', async () => {
    const l = limiter({ max: 1, windowMs: 1000, daily: 1000 });
    expect(sendIn(await l.acquire('a', 'k1', 's1'))).toBe(0);
    expect(sendIn(await l.acquire('b', 'k1', 's2'))).toBe(0);
    expect(sendIn(await l.acquire('a', 'k2', 's3'))).toBeGreaterThan(0);
  });

  it('counts HighLevel failures in a row across callers; an answer of its own clears them', async () => {
    const l = limiter({ max: 100, windowMs: 1000, daily: 1000 });
    const down = async () => l.settle('loc', 'k', randomUUID(), undefined, undefined, 'down');
    expect([await down(), await down(), await down()]).toEqual([1, 2, 3]);
    expect(await l.settle('loc', 'k', randomUUID(), undefined)).toBe(0); // a 500: neither
    expect(await down()).toBe(4);
    expect(await l.settle('loc', 'k', randomUUID(), undefined, undefined, 'up')).toBe(0);
    expect(await down()).toBe(1);
    expect(await l.settle('other', 'k', randomUUID(), undefined, undefined, 'down')).toBe(1);
  });
});
