/**
 * One test per row of the classification table, against a real Redis and the stand-in.
 */
import { DeliveryLedger } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, TOKENS, until, useHarness, type Harness } from './harness.ts';

describe('delivery by answer', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  it('2xx with messageId: delivered, ledger written, messageId returned', async () => {
    const h = await harness();
    await h.worker();
    const [job] = await h.send([sms(1)]);
    await h.settled(['locA']);
    const [received] = h.fake.messages();
    expect(received).toMatchObject({ locationId: 'locA', altId: 'locA-m1', body: { direction: 'inbound', message: 'message 1' } });
    const ledger = new DeliveryLedger(h.redis, h.config.queuePrefix, h.config.ledgerTtlMs);
    expect((await ledger.get('locA', job?.key ?? ''))?.messageId).toBe(received?.messageId);
    const [completed] = await h.queue('locA').getCompleted();
    expect(completed?.returnvalue).toEqual({ messageId: received?.messageId });
    expect(h.logs.join('')).toContain('"msg":"delivered"');
  });

  it('a message already in the ledger is completed without posting (skipped)', async () => {
    const h = await harness();
    const [job] = await h.send([sms(1)]);
    const ledger = new DeliveryLedger(h.redis, h.config.queuePrefix, h.config.ledgerTtlMs);
    await ledger.record('locA', job?.key ?? '', { messageId: 'earlier', at: 1 });
    await h.worker();
    await h.settled(['locA']);
    expect(h.fake.stats().requests).toBe(0);
    const [completed] = await h.queue('locA').getCompleted();
    expect(completed?.returnvalue).toEqual({ messageId: 'earlier', skipped: true });
  });

  it('2xx without messageId: suspect, retried 3 times, then dead-lettered with that reason', async () => {
    const h = await harness({ fake: { faults: { empty201: 1 } } });
    await h.worker();
    await h.send([sms(1)]);
    await h.settled(['locA']);
    // Three posts; before each retry a lookup (the 201 may have created it) found nothing.
    expect(posts(h)).toBe(3);
    expect(h.fake.stats().reads).toBeGreaterThanOrEqual(2);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ class: 'suspect', httpStatus: 201, attempts: 3, locationId: 'locA' });
    expect(dead?.reason).toContain('without a messageId');
  });

  it('400: permanent, dead-lettered at once with the API message', async () => {
    const h = await harness({ fake: { providers: ['p-real'] } });
    await h.worker();
    await h.send([{ ...sms(1), type: 'WhatsApp', conversationProviderId: 'p-wrong' }]);
    await h.settled(['locA']);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ class: 'permanent', httpStatus: 400, attempts: 1 });
    expect(dead?.reason).toBe('HighLevel refused the message (400): Invalid conversationProviderId');
    expect(JSON.parse(dead?.apiError ?? '{}')).toMatchObject({ statusCode: 400, message: 'Invalid conversationProviderId' });
    expect(h.fake.stats().requests).toBe(1);
  });

  it('422: permanent, dead-lettered at once with the validation messages', async () => {
    const h = await harness({ fake: { maxMessageChars: 5 } });
    await h.worker();
    await h.send([sms(1), sms(2, 'locA', { message: 'ok' })]);
    await h.settled(['locA']);
    const dead = await h.deadLettered();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ class: 'permanent', httpStatus: 422, attempts: 1, key: 'k-locA-m1' });
    expect(dead[0]?.reason).toContain('message must be shorter than or equal to 5 characters');
    expect(h.fake.stats()).toMatchObject({ requests: 2, accepted: 1 });
  });

  it.each([403, 404])('%i: permanent', async (status) => {
    const h = await harness();
    await h.worker();
    h.fake.outage(60_000, status);
    await h.send([sms(1)]);
    await h.settled(['locA']);
    expect((await h.deadLettered())[0]).toMatchObject({ class: 'permanent', httpStatus: status, attempts: 1 });
  });

  it('a job whose data no longer parses is permanent and never posted', async () => {
    const h = await harness();
    await h.send([sms(1)]);
    const [job] = await h.queue('locA').getJobs(['wait', 'prioritized']);
    await job?.updateData({ ...job.data, v: 99 });
    await h.worker();
    await h.settled(['locA']);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ class: 'invalid-job', attempts: 1, key: 'k-locA-m1' });
    expect(dead?.job).toBeUndefined();
    expect(dead?.raw).toMatchObject({ v: 99 });
    expect(dead?.reason).toContain('no longer parses');
    expect(h.fake.stats().requests).toBe(0);
  });

  it('401: the location pauses, its messages stay queued, others continue; a token reload resumes it', async () => {
    const h = await harness();
    h.fake.configure({ tokens: { [TOKENS.locA]: null } }); // revoked at HighLevel
    const worker = await h.worker();
    await h.send([sms(1, 'locA'), sms(2, 'locA'), sms(1, 'locB')]);
    await h.settled(['locB']);
    await until(async () => h.queue('locA').isPaused(), 5_000, 'locA to pause');
    expect(await h.deadLettered()).toEqual([]);
    expect(await h.pending('locA')).toBe(2);
    const [job] = await h.queue('locA').getJobs(['wait', 'prioritized']);
    expect(job?.attemptsMade).toBe(0);
    expect(h.logs.join('')).toContain('paused: credentials rejected');

    // A new token for locA: HighLevel knows it, the tokens file is updated and reloaded.
    h.fake.configure({ tokens: { 'secret-token-A2-77aa01': 'locA' } });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(h.tokensFile, JSON.stringify({ ...TOKENS, locA: 'secret-token-A2-77aa01' }));
    expect(await worker.reloadTokens()).toEqual(['locA']);
    await h.settled(['locA']);
    expect(h.fake.stats().acceptedByLocation).toEqual({ locA: 2, locB: 1 });
  });

  it('429: not an attempt, the location waits about one interval, then delivers', async () => {
    // HighLevel allows 2 per 2 s; we believe 100 per 0.4 s, and another app has just spent the
    // window: the first post meets a 429 whatever its pace (HighLevel's headers would otherwise
    // teach the worker the real limit before it ever met one).
    const h = await harness({ fake: { limits: { max: 2, windowMs: 2_000 } }, env: { GHL_RATE_LIMIT_WINDOW_MS: '400' } });
    await h.worker();
    h.fake.spend('locA', 2);
    await h.send([1, 2, 3, 4, 5].map((i) => sms(i)));
    await h.settled(['locA'], 30_000);
    expect(h.fake.stats().accepted).toBe(5);
    expect(h.fake.stats().rateLimited).toBeGreaterThan(0);
    expect(await h.deadLettered()).toEqual([]);
    const completed = await h.queue('locA').getCompleted();
    // A 429 never counts as an attempt: every job completed on its first counted attempt.
    expect(completed.map((j) => j.attemptsMade)).toEqual([1, 1, 1, 1, 1]);
  });

  it('429 with Retry-After: the location waits that long', async () => {
    // Answers take 300 ms, so both posts are on their way before the first answer's headers teach
    // the worker HighLevel's limit (a paced worker would otherwise never meet the 429).
    const h = await harness({
      fake: { limits: { max: 1, windowMs: 60_000 }, retryAfter: true, latency: { minMs: 300, maxMs: 300 } },
      env: { GHL_RATE_LIMIT_WINDOW_MS: '100' },
    });
    await h.worker();
    await h.send([sms(1), sms(2)]);
    await until(() => h.fake.stats().rateLimited >= 1, 5_000, 'a 429');
    // HighLevel asked for ~60 s: the location waits that long, not our 100 ms window. (Until the
    // worker has read the answer and let the location go, its place shows the lease's end, ~2 s.)
    await until(async () => ((await h.state.dueInMs('locA')) ?? 0) > 50_000, 5_000, 'the location to wait out Retry-After');
    expect(h.fake.stats().rateLimited).toBe(1);
  });

  it.each([
    ['502', { status502: 1 }],
    ['503', { status503: 1 }],
    ['a reset connection', { drop: 1 }],
  ])('%s: transient, backed off and retried, then delivered', async (_name, faults) => {
    const h = await harness({ fake: { faults } });
    await h.worker();
    await h.send([sms(1)]);
    await until(() => posts(h) >= 2, 5_000, 'two attempts');
    h.fake.configure({ faults: { status502: 0, status503: 0, drop: 0 } });
    await h.settled(['locA']);
    expect(h.fake.stats().accepted).toBe(1);
    expect(await h.deadLettered()).toEqual([]);
    const [done] = await h.queue('locA').getCompleted();
    expect(done?.attemptsMade).toBeGreaterThanOrEqual(3);
  });

  it('a timeout: transient', async () => {
    const h = await harness({ fake: { latency: { minMs: 0, maxMs: 0, slowProbability: 1, slowMs: 600 } }, env: { HTTP_TIMEOUT_MS: '200' } });
    await h.worker();
    await h.send([sms(1)]);
    await until(() => h.logs.join('').includes('ETIMEDOUT'), 5_000, 'a timeout');
    h.fake.configure({ latency: { slowProbability: 0 } });
    await h.settled(['locA']);
    expect(await h.deadLettered()).toEqual([]);
  });

  it('transient failures past GHL_MAX_ATTEMPTS are dead-lettered with attempts and times', async () => {
    const h = await harness({ fake: { faults: { status503: 1 } }, env: { GHL_MAX_ATTEMPTS: '4' } });
    await h.worker();
    await h.send([sms(1)]);
    await h.settled(['locA']);
    expect(h.fake.stats().requests).toBe(4);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ class: 'transient', httpStatus: 503, attempts: 4, key: 'k-locA-m1' });
    expect(dead?.reason).toContain('after 4 attempts');
    expect(dead?.firstAttemptAt).toBeLessThan(dead?.lastAttemptAt ?? 0);
    expect(dead?.worker).toMatch(/:\d+$/);
    expect(dead?.job?.body.message).toBe('message 1');
  });

  it('500: retried at most 3 times, then dead-lettered', async () => {
    const h = await harness({ fake: { faults: { status500: 1 } }, env: { GHL_MAX_ATTEMPTS: '10' } });
    await h.worker();
    await h.send([sms(1)]);
    await h.settled(['locA']);
    expect(posts(h)).toBe(3);
    expect((await h.deadLettered())[0]).toMatchObject({ class: 'transient', httpStatus: 500, attempts: 3 });
  });

  it('HighLevel down for longer than every attempt: the location waits and probes, nothing is dead-lettered', async () => {
    const h = await harness({ env: { GHL_MAX_ATTEMPTS: '3', WORKER_CONCURRENCY: '4' } });
    await h.worker();
    h.fake.outage(3_500, 503);
    await h.send(Array.from({ length: 20 }, (_, i) => sms(i)));
    await until(() => h.logs.join('').includes('HighLevel down: location waits'), 5_000, 'the location to count as down');
    await h.settled(['locA'], 30_000);
    expect(await h.deadLettered()).toEqual([]);
    expect(h.fake.stats().accepted).toBe(20);
    const refused = h.fake.stats().byStatus['503'] ?? 0;
    // Five failures in a row (four in flight when the first came back, so up to eight), then one
    // probe per wait (1 s, 2 s): not 20 messages x 3 attempts.
    expect(refused).toBeGreaterThanOrEqual(5);
    expect(refused).toBeLessThanOrEqual(12);
    const completed = await h.queue('locA').getCompleted();
    expect(Math.max(...completed.map((j) => j.attemptsMade))).toBeLessThanOrEqual(3);
  });

  it('nothing ends in the failed set without a dead-letter record', async () => {
    // 500s: capped attempts, and not an outage (HighLevel answers 500 to some bad messages).
    const h = await harness({ fake: { faults: { status500: 1 } }, env: { GHL_MAX_ATTEMPTS: '2' } });
    await h.worker();
    await h.send([1, 2, 3].map((i) => sms(i)));
    await h.settled(['locA']);
    const failed = await h.queue('locA').getFailed();
    const dead = new Set((await h.deadLettered()).map((d) => d.key));
    expect(failed.length).toBe(3);
    for (const job of failed) expect(dead.has((job.data as { key: string }).key)).toBe(true);
  });
});

/** Posts the stand-in received (its requests, less the reads of lookups). */
function posts(h: Harness): number {
  const stats = h.fake.stats();
  return stats.requests - stats.reads;
}
