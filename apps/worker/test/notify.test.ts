/**
 * Notifications (NOTIFY_WEBHOOK_URL) end to end: real workers, the stand-in, a real Redis and a
 * real local webhook. A 401 pauses a location and a 422 dead-letters a message; the webhook
 * gets them batched and signed, without a token or secret; a failing webhook gets them after
 * retries, each event once; a worker stopped before it could send leaves them to another.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NotifyOutbox, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature, type NotifyEvent } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { NotifyPolicy } from '../src/notify-policy.ts';
import { sms, TOKENS, until, useHarness, type Harness } from './harness.ts';
import { eventsOf, WebhookReceiver } from './webhook-receiver.ts';

const SECRET = 'whsec-7c1d0e9b44';
/** The webhook's URL carries a token of its own: it must never reach a log. */
const QUERY_TOKEN = 'hook-query-token-7f3a';
/** Quick, for tests: a batch waits 400 ms for others; a failed POST waits 50 ms to 200 ms. */
const POLICY: Partial<NotifyPolicy> = {
  batchWindowMs: 400,
  pollMs: 50,
  minIntervalMs: 50,
  leaseMs: 3_000,
  timeoutMs: 1_000,
  backoff: { baseMs: 50, capMs: 200 },
};

describe('notifications', () => {
  const redis = useRedis();
  const harness = useHarness(redis);
  let receiver: WebhookReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  const start = async (fake: Parameters<typeof harness>[0] = {}): Promise<{ h: Harness; hook: WebhookReceiver }> => {
    const hook = await WebhookReceiver.start();
    receiver = hook;
    const h = await harness({
      ...fake,
      env: { NOTIFY_WEBHOOK_URL: `${hook.url}/hooks/ghl?token=${QUERY_TOKEN}`, NOTIFY_WEBHOOK_SECRET: SECRET },
    });
    return { h, hook };
  };

  it('a pause and dead letters reach the webhook batched and signed, with no token, secret or message in them', async () => {
    const { h, hook } = await start({ fake: { maxMessageChars: 5 } });
    h.fake.configure({ tokens: { [TOKENS.locA]: null } }); // locA's token revoked: 401, the location pauses
    const worker = await h.worker({ notify: POLICY, admin: { port: 0, explicit: true } });
    await h.send([sms(1, 'locA'), sms(2, 'locA'), ...[1, 2, 3, 4].map((i) => sms(i, 'locB')), sms(5, 'locB', { message: 'ok' })]);
    await until(() => hook.delivered().length >= 5, 15_000, 'five events at the webhook');
    await sleep(600); // anything more would come by now

    const events = hook.delivered();
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(events.filter((e) => e.type === 'location.paused')).toEqual([
      expect.objectContaining({ locationId: 'locA', reason: expect.stringContaining('(401)') as unknown }),
    ]);
    const dead = events.filter((e): e is Extract<NotifyEvent, { type: 'dead_letter.added' }> => e.type === 'dead_letter.added');
    expect(dead.map((e) => e.key).sort()).toEqual(['k-locB-m1', 'k-locB-m2', 'k-locB-m3', 'k-locB-m4']);
    expect(dead[0]).toMatchObject({ locationId: 'locB', class: 'permanent', httpStatus: 422, attempts: 1, recordId: `locB.${dead[0]?.key ?? ''}` });
    expect(dead[0]?.reason).toContain('shorter than or equal to 5 characters');
    expect(events).toHaveLength(5);
    // Batched: five events, fewer POSTs.
    expect(hook.received.length).toBeLessThanOrEqual(2);

    for (const request of hook.received) {
      expect(request).toMatchObject({ method: 'POST', url: `/hooks/ghl?token=${QUERY_TOKEN}` });
      expect(request.headers['content-type']).toBe('application/json');
      const signed = { timestamp: request.headers[TIMESTAMP_HEADER] as string, signature: request.headers[SIGNATURE_HEADER] as string };
      expect(verifySignature(SECRET, request.body, signed)).toBe(true);
      expect(JSON.parse(request.body)).toEqual({ events: expect.any(Array) as unknown, sentAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown });
      for (const secret of [...Object.values(TOKENS), SECRET, QUERY_TOKEN, 'message 1', 'message 2']) expect(request.body).not.toContain(secret);
    }
    const logs = h.logs.join('');
    expect(logs).toContain('"msg":"notifications sent"');
    expect(logs).toContain(`"webhook":"${hook.url}"`);
    for (const secret of [SECRET, QUERY_TOKEN, '/hooks/ghl']) expect(logs).not.toContain(secret);

    const metrics = await (await fetch(`${worker.admin?.url ?? ''}/metrics`)).text();
    expect(metrics).toContain('ghl_ingest_notifications_total{result="sent"} 5');
    expect(metrics).toContain('ghl_ingest_notifications_total{result="dropped"} 0');
    expect(await new NotifyOutbox(h.redis, h.config.queuePrefix).length()).toBe(0);
  });

  it('a webhook answering 500s and a 503 with Retry-After gets every event after retries, each once', async () => {
    const { h, hook } = await start({ fake: { maxMessageChars: 5 } });
    hook.answers = [{ status: 500 }, { status: 500 }, { status: 503, headers: { 'retry-after': '1' } }];
    h.fake.configure({ tokens: { [TOKENS.locA]: null } });
    await h.worker({ notify: POLICY });
    await h.send([sms(1, 'locA'), sms(1, 'locB'), sms(2, 'locB')]);
    await until(() => hook.delivered().length >= 3, 15_000, 'three events delivered');
    await sleep(600);

    // One batch: tried three times, then delivered.
    expect(hook.received.map((r) => r.status)).toEqual([500, 500, 503, 200]);
    const [, , refused, ok] = hook.received;
    // Retry-After: 1 was honoured (the backoff alone is 200 ms at most).
    expect((ok?.at ?? 0) - (refused?.at ?? 0)).toBeGreaterThanOrEqual(950);
    const tried = new Set(hook.received.flatMap((r) => eventsOf(r).map((e) => e.id)));
    const delivered = hook.delivered().map((e) => e.id);
    // Nothing lost (every event tried was delivered), nothing delivered twice.
    expect(new Set(delivered)).toEqual(tried);
    expect(delivered).toHaveLength(tried.size);
    expect(
      hook
        .delivered()
        .map((e) => e.type)
        .sort(),
    ).toEqual(['dead_letter.added', 'dead_letter.added', 'location.paused']);
    expect(h.logs.join('')).toContain('"msg":"notifications not delivered: retrying"');
  });

  it('a worker stopped before it could send: another worker sends what it recorded', async () => {
    const { h, hook } = await start();
    hook.status = 503; // the webhook is down while the first worker runs
    h.fake.configure({ tokens: { [TOKENS.locA]: null } });
    const first = await h.worker({ notify: POLICY });
    await h.send([sms(1, 'locA')]);
    await until(() => hook.received.length >= 1, 10_000, 'the first worker to try');
    await first.close(1_000);
    const tried = hook.received.flatMap((r) => eventsOf(r).map((e) => e.id));
    expect(new Set(tried).size).toBe(1);
    expect(await new NotifyOutbox(h.redis, h.config.queuePrefix).length()).toBe(1);

    hook.status = 200;
    await h.worker({ notify: POLICY });
    await until(() => hook.delivered().length >= 1, 10_000, 'the second worker to send it');
    await sleep(300);
    expect(hook.delivered().map((e) => e.id)).toEqual([tried[0]]);
    expect(await new NotifyOutbox(h.redis, h.config.queuePrefix).length()).toBe(0);
  });
});
