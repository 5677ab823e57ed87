/**
 * Looking before posting again (reconcile.ts), against the stand-in's read side: an outcome that
 * may have reached HighLevel (a reset after it recorded the message, an answer slower than the
 * timeout, a worker SIGKILLed with the request in flight) is looked up before the next post, and
 * found messages are not posted twice. Side by side with GHL_RECONCILE=off, and the undecided
 * cases (altId left out, no read scope) post as before and say why.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, until, useHarness, type Harness } from './harness.ts';

describe('reconcile: look before posting again', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  async function lookups(h: Harness, locationId = 'locA') {
    const [snapshot] = await h.state.snapshot([locationId]);
    return snapshot?.lookups;
  }

  it.each([
    ['a reset after HighLevel recorded it', { faults: { dropAfterAccept: 1 } }, {}],
    [
      'an answer slower than HTTP_TIMEOUT_MS, after HighLevel recorded it',
      { faults: { slowAfterAccept: 1, slowAfterAcceptMs: 1_500 } },
      { HTTP_TIMEOUT_MS: '400' },
    ],
  ])('%s: found by its altId, recorded with HighLevel message id, never posted twice', async (_what, fake, env) => {
    const h = await harness({ fake, env });
    await h.worker();
    await h.send([sms(1), sms(2, 'locA', { contactId: 'c-other' }), sms(3, 'locB')]);
    await h.settled(['locA', 'locB'], 30_000);
    const stats = h.fake.stats();
    expect(stats.accepted).toBe(3);
    expect(stats.duplicateAltIds).toBe(0);
    expect(stats.reads).toBeGreaterThanOrEqual(3); // each found: a search for its contact's conversation, then a page
    expect(await h.deadLettered()).toEqual([]);
    // The ledger holds the message id HighLevel gave.
    const byAltId = new Map(h.fake.messages().map((m) => [m.altId, m.messageId]));
    const completed = await h.queue('locA').getCompleted();
    expect(completed.map((j) => (j.returnvalue as { messageId: string }).messageId).sort()).toEqual([byAltId.get('locA-m1'), byAltId.get('locA-m2')].sort());
    expect(await lookups(h)).toMatchObject({ found: 2, undecided: 0 });
  });

  it('GHL_RECONCILE=off: the same reset is posted again (a duplicate), as before', async () => {
    const h = await harness({ fake: { faults: { dropAfterAccept: 1 } }, env: { GHL_RECONCILE: 'off', GHL_MAX_ATTEMPTS: '3' } });
    await h.worker();
    await h.send([sms(1)]);
    await h.settled(['locA'], 30_000);
    expect(h.fake.stats().reads).toBe(0);
    expect(h.fake.stats().duplicateAltIds).toBeGreaterThan(0);
  });

  it.each([
    ['HighLevel leaves altId out of its answer', { reads: { altId: false } }, 'no-altid'],
    ['the token may not read (401)', { reads: { scope: false } }, 'no-read-scope'],
  ])('undecided when %s: posted as without a lookup, counted and logged with why', async (_what, reads, reason) => {
    const h = await harness({ fake: { faults: { dropAfterAccept: 1 }, ...reads }, env: { GHL_MAX_ATTEMPTS: '2' } });
    await h.worker();
    await h.send([sms(1)]);
    await h.settled(['locA'], 30_000);
    expect((await lookups(h))?.undecided).toBeGreaterThanOrEqual(1);
    expect(h.logs.join('')).toContain(`"reason":"${reason}"`);
    expect(h.fake.stats().duplicateAltIds).toBeGreaterThan(0); // what an undecided lookup cannot prevent
  });

  it("the location's lookups of this minute spent: the message waits (no attempt), then is found; never posted blind", async () => {
    const h = await harness({ fake: { faults: { dropAfterAccept: 1 } } });
    // Every lookup of this minute and the next two already spent, as by a storm of unknown outcomes.
    const minute = Math.floor(Date.now() / 60_000);
    for (const m of [minute, minute + 1, minute + 2]) await redis.admin.set(`${redis.prefix}:lookups:{locA}:${m}`, '1000000', 'PX', 240_000);
    await h.worker();
    await h.send([sms(1)]);
    await until(() => h.logs.join('').includes('lookup budget spent'), 20_000, 'the lookup to wait for its budget');
    const [waiting] = await h.queue('locA').getDelayed();
    expect(waiting?.attemptsMade).toBe(1); // the post whose answer was lost; the wait cost none
    expect(h.fake.stats()).toMatchObject({ accepted: 1, reads: 0 });
    // The budget back (a new minute): the message is looked up, found, and not posted again.
    for (const m of [minute, minute + 1, minute + 2]) await redis.admin.del(`${redis.prefix}:lookups:{locA}:${m}`);
    await waiting?.promote();
    await h.locations.resume('locA'); // due now, not at the minute it was told to wait for
    await h.settled(['locA'], 30_000);
    expect(h.fake.stats()).toMatchObject({ accepted: 1, duplicateAltIds: 0 });
    expect(await lookups(h)).toMatchObject({ found: 1, undecided: 0 });
  });

  it('a 503 (not taken) or a 4xx is not looked up', async () => {
    const h = await harness({ fake: { faults: { status503: 1 } } });
    await h.worker();
    await h.send([sms(1)]);
    await until(() => h.fake.stats().requests >= 2, 10_000, 'a retry');
    h.fake.configure({ faults: { status503: 0 } });
    await h.settled(['locA'], 30_000);
    expect(h.fake.stats().reads).toBe(0);
    expect(await lookups(h)).toMatchObject({ found: 0, absent: 0, undecided: 0 });
  });

  it('workers SIGKILLed with requests in flight: their jobs are looked up when taken again; no duplicate', async () => {
    const h = await harness({ fake: { latency: { minMs: 20, maxMs: 60 }, recordBodies: false } });
    const messages = 200;
    await h.send(Array.from({ length: messages }, (_, i) => sms(i, i % 2 === 0 ? 'locA' : 'locB')));
    const env = { WORKER_CONCURRENCY: '8' };
    const workers: ChildProcess[] = [h.spawnWorker(env), h.spawnWorker(env)];
    for (const target of [50, 120]) {
      await until(() => h.fake.stats().accepted >= target, 60_000, `${target} deliveries`);
      const victim = workers.shift() as ChildProcess;
      const exited = once(victim, 'exit');
      victim.kill('SIGKILL');
      await exited;
      workers.push(h.spawnWorker(env));
    }
    await h.settled(['locA', 'locB'], 60_000);
    const stats = h.fake.stats();
    expect(new Set(h.fake.messages().map((m) => `${m.locationId}/${m.altId ?? ''}`)).size).toBe(messages);
    expect(stats.duplicateAltIds).toBe(0);
    expect(await h.deadLettered()).toEqual([]);
  }, 120_000);
});
