import { setTimeout as sleep } from 'node:timers/promises';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { deadLetterAdded, locationParked, locationPaused } from './events.ts';
import { NotifyOutbox, outboxKeys, type OutboxTurn } from './outbox.ts';

const take = { leaseMs: 5_000, count: 10, maxAgeMs: 86_400_000 };

function events(turn: OutboxTurn): string[] {
  if (turn.kind !== 'events') throw new Error(`expected events, got ${turn.kind}`);
  return turn.entries.map((e) => e.event?.type ?? 'unparsed');
}

describe('the notification outbox (Lua, on a real Redis)', () => {
  const redis = useRedis();

  it('keeps events in order, once per happening, until they are done', async () => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix);
    expect(await outbox.add(locationPaused('locA', 'token rejected'))).toEqual({ added: true, dropped: 0 });
    // Jobs in flight meet the same 401: the same pause.
    expect(await outbox.add(locationPaused('locA', 'token rejected'))).toEqual({ added: false, dropped: 0 });
    await outbox.add(locationParked('locB', Date.now() + 60_000, 'daily budget spent'));
    const turn = await outbox.take('w1', take);
    expect(events(turn)).toEqual(['location.paused', 'location.parked']);
    expect(turn).toMatchObject({ expired: 0, attempts: 0 });
    expect(turn.kind === 'events' && turn.oldestAgeMs).toBeGreaterThanOrEqual(0);
    const ids = turn.kind === 'events' ? turn.entries.map((e) => e.id) : [];
    expect(await outbox.done('w1', ids)).toBe(2);
    expect(await outbox.length()).toBe(0);
    // Every key is in the {notify} slot.
    const keys = await redis.keys(`${redis.prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith(`${redis.prefix}:{notify}:`))).toBe(true);
  });

  it('holds at most its capacity: the oldest go, counted', async () => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix, 3);
    const record = (i: number) => ({
      locationId: 'locA',
      key: `k-${i}`,
      job: undefined,
      class: 'permanent' as const,
      reason: 'r',
      attempts: 1,
      firstAttemptAt: i,
      lastAttemptAt: i,
      worker: 'w',
    });
    const dropped = [];
    for (let i = 1; i <= 5; i += 1) dropped.push((await outbox.add(deadLetterAdded(record(i)))).dropped);
    expect(dropped).toEqual([0, 0, 0, 1, 1]);
    const turn = await outbox.take('w1', take);
    expect(turn.kind === 'events' && turn.entries.map((e) => (e.event?.type === 'dead_letter.added' ? e.event.key : ''))).toEqual(['k-3', 'k-4', 'k-5']);
  });

  it('one sender at a time: the lease is renewed by its holder, free when released or run out', async () => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix);
    await outbox.add(locationPaused('locA', 'r'));
    expect((await outbox.take('w1', { ...take, leaseMs: 200 })).kind).toBe('events');
    expect(await outbox.take('w2', take)).toEqual({ kind: 'busy' });
    expect((await outbox.take('w1', { ...take, leaseMs: 200 })).kind).toBe('events');
    await sleep(250);
    expect((await outbox.take('w2', take)).kind).toBe('events');
    expect(await outbox.release('w1')).toBe(false);
    expect(await outbox.release('w2')).toBe(true);
    expect((await outbox.take('w1', take)).kind).toBe('events');
  });

  it("a failed send's backoff is every process's: a new holder waits it out; done ends it", async () => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix);
    await outbox.add(locationPaused('locA', 'r'));
    await outbox.take('w1', take);
    expect(await outbox.retry('w2', 1_000)).toBeUndefined(); // not the holder
    expect(await outbox.retry('w1', 300)).toBe(1);
    await outbox.release('w1');
    const waiting = await outbox.take('w2', take);
    expect(waiting).toMatchObject({ kind: 'wait', attempts: 1 });
    expect(waiting.kind === 'wait' && waiting.ms).toBeGreaterThan(200);
    await sleep(320);
    const turn = await outbox.take('w2', take);
    expect(turn).toMatchObject({ kind: 'events', attempts: 1 });
    expect(await outbox.retry('w2', 0)).toBe(2);
    await outbox.done('w2', turn.kind === 'events' ? turn.entries.map((e) => e.id) : []);
    expect(await outbox.take('w2', take)).toMatchObject({ kind: 'events', attempts: 0, entries: [] });
  });

  it('drops events older than the longest an event may wait, counted', async () => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix);
    await outbox.add(locationPaused('locA', 'r'));
    await sleep(60);
    await outbox.add(locationPaused('locB', 'r'));
    const turn = await outbox.take('w1', { ...take, maxAgeMs: 40 });
    expect(turn).toMatchObject({ kind: 'events', expired: 1 });
    expect(turn.kind === 'events' && turn.entries.map((e) => e.event?.locationId)).toEqual(['locB']);
  });

  it('an entry that no longer parses comes back unparsed, to leave with its batch', async () => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix);
    await redis.admin.xadd(outboxKeys(redis.prefix).events, '*', 'e', '{not json');
    const turn = await outbox.take('w1', take);
    expect(turn.kind === 'events' && turn.entries.map((e) => e.event)).toEqual([undefined]);
  });
});
