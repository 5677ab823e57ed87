/**
 * The notification sender against a real Redis outbox and real local webhooks: a backlog drains
 * in paced batches (a restart does not flood the receiver), a redirect to another origin is not
 * followed, a refusal drops the batch, and a second sender waits while the first holds the lease.
 */
import { Writable } from 'node:stream';
import { createLogger, locationPaused, NotifyOutbox } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { NotifyPolicy } from '../src/notify-policy.ts';
import { NotifySender, type NotifyResult } from '../src/notify-sender.ts';
import { until } from './harness.ts';
import { eventsOf, WebhookReceiver } from './webhook-receiver.ts';

const POLICY: Partial<NotifyPolicy> = {
  batchWindowMs: 100,
  pollMs: 50,
  minIntervalMs: 200,
  leaseMs: 3_000,
  timeoutMs: 1_000,
  backoff: { baseMs: 50, capMs: 200 },
};

describe('the notification sender', () => {
  const redis = useRedis();
  let open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.reverse()) await o.close();
    open = [];
  });

  const receiver = async () => {
    const r = await WebhookReceiver.start();
    open.push(r);
    return r;
  };
  const sender = (url: string, policy: Partial<NotifyPolicy> = POLICY) => {
    const logs: string[] = [];
    const results: Partial<Record<NotifyResult, number>> = {};
    const s = new NotifySender({
      outbox: new NotifyOutbox(redis.client(), redis.prefix),
      url,
      secret: undefined,
      logger: createLogger(
        'info',
        'test',
        new Writable({
          write: (chunk: Buffer, _encoding, done) => {
            logs.push(chunk.toString());
            done();
          },
        }),
      ),
      policy,
      onResult: (result, n) => {
        results[result] = (results[result] ?? 0) + n;
      },
    });
    open.push(s);
    return { s, logs, results };
  };
  /** `n` events, of locations `loc<from>`, `loc<from + 1>`, ... */
  const fill = async (n: number, from = 0) => {
    const outbox = new NotifyOutbox(redis.client(), redis.prefix);
    for (let i = from; i < from + n; i += 1) await outbox.add(locationPaused(`loc${i}`, 'token rejected'));
    return outbox;
  };

  it('a backlog goes in batches of at most 100, one POST at a time, paced', async () => {
    const hook = await receiver();
    await fill(250);
    const { s, results } = sender(`${hook.url}/hook`);
    s.start();
    // The receiver has a batch before the sender has its answer: wait for the sender's count.
    await until(() => results.sent === 250, 10_000, 'the backlog to drain');
    expect(hook.received.map((r) => eventsOf(r).length)).toEqual([100, 100, 50]);
    const gaps = hook.received.slice(1).map((r, i) => r.at - (hook.received[i]?.at ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(190);
    // Oldest first, each once.
    expect(hook.delivered().map((e) => e.locationId)).toEqual(Array.from({ length: 250 }, (_, i) => `loc${i}`));
    expect(results).toEqual({ sent: 250 });
  });

  it('a redirect within the origin is followed; one to another origin is not, and the batch is dropped', async () => {
    const hook = await receiver();
    const elsewhere = await receiver();
    hook.answers = [{ status: 307, headers: { location: '/moved' } }];
    await fill(1);
    const first = sender(`${hook.url}/hook`);
    first.s.start();
    await until(() => hook.delivered().length === 1, 5_000, 'the event after a redirect within the origin');
    expect(hook.received.map((r) => [r.url, r.status])).toEqual([
      ['/hook', 307],
      ['/moved', 200],
    ]);

    hook.answers = [{ status: 307, headers: { location: `${elsewhere.url}/steal` } }];
    await fill(1, 1);
    await until(() => first.results.dropped === 1, 5_000, 'the event dropped');
    expect(elsewhere.received).toEqual([]);
    expect(first.logs.join('')).toContain('a redirect to another origin is not followed');
  });

  it('a refusal (400) drops the batch at once; nothing is tried again', async () => {
    const hook = await receiver();
    hook.status = 400;
    const outbox = await fill(3);
    const { s, results, logs } = sender(`${hook.url}/hook`);
    s.start();
    await until(() => results.dropped === 3, 5_000, 'the batch dropped');
    await new Promise((r) => setTimeout(r, 300));
    expect(hook.received).toHaveLength(1);
    expect(await outbox.length()).toBe(0);
    expect(logs.join('')).toContain('"msg":"notifications refused by the webhook: dropped"');
  });

  it('one sender at a time: a second waits while the first holds the lease, and takes over when it stops', async () => {
    // Each sender posts to a webhook of its own: A's always fails, B's always accepts. A POST of A's
    // still on its way when A stops is abandoned, not cancelled at the receiver, which may answer it
    // later (its events stay for the next sender): had both shared one webhook whose answer the test
    // switched to 200 after A stopped, that late answer could be a 200 too (a duplicate the product
    // allows), and the test would see A deliver.
    const hookA = await receiver();
    hookA.status = 503;
    const hookB = await receiver();
    await fill(1);
    const a = sender(`${hookA.url}/a`);
    a.s.start();
    await until(() => hookA.received.length >= 1, 5_000, 'the first sender to try');
    const b = sender(`${hookB.url}/b`);
    b.s.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(hookA.received.length).toBeGreaterThan(1); // A retried meanwhile
    expect(hookB.received).toEqual([]); // while B waited for the lease
    await a.s.close();
    // B counts the event once its webhook has answered: the takeover is done.
    await until(() => b.results.sent === 1, 5_000, 'the second sender to send the event').catch(async (error: unknown) => {
      // On failure: what each sender did, what each webhook got, and the outbox's sender state.
      const state = await redis.client().hgetall(`${redis.prefix}:{notify}:sender`);
      const got = (hook: WebhookReceiver) => hook.received.map((r) => [r.url, r.status, Math.round(r.at)]);
      throw new Error(
        `${(error as Error).message}: ${JSON.stringify({ a: got(hookA), b: got(hookB), state, aLogs: a.logs, bLogs: b.logs, bResults: b.results })}`,
      );
    });
    expect(hookB.delivered().map((e) => e.locationId)).toEqual(['loc0']);
    expect(b.results).toEqual({ sent: 1 });
  });
});
