/**
 * Sends the notification outbox to NOTIFY_WEBHOOK_URL: every worker runs one, and the one holding
 * the outbox's send lease sends (a worker that stops gives the lease up; a dead one loses it
 * after `leaseMs`). One POST at a time of up to `maxBatch` events, `{ events, sentAt }`, signed
 * when NOTIFY_WEBHOOK_SECRET is set; the events leave the outbox only once the receiver answered
 * 2xx (or refused them for good), so a sender that dies mid-POST leaves them to the next, and a
 * receiver sees an event twice at most after an answer lost on the way (it drops the second by
 * `id`). Policy: notify-policy.ts. Logs name the webhook's origin only: its path or query may
 * carry a token.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { coerceError, signBody, type Logger, type NotifyEvent, type NotifyOutbox } from '@ghl-ingest/queue';
import got, { RequestError, type Got } from 'got';
import { batchDue, DEFAULT_NOTIFY_POLICY, nextLookMs, retryDelay, sendVerdict, type NotifyPolicy, type WebhookOutcome } from './notify-policy.ts';

/** What became of events: sent (2xx), failed (a POST to be retried), dropped (refused for good, too old, or the outbox full). */
export type NotifyResult = 'sent' | 'failed' | 'dropped';

export interface NotifySenderOptions {
  outbox: NotifyOutbox;
  /** NOTIFY_WEBHOOK_URL. */
  url: string;
  /** NOTIFY_WEBHOOK_SECRET: signs each body. */
  secret: string | undefined;
  logger: Logger;
  /** Over DEFAULT_NOTIFY_POLICY. */
  policy?: Partial<NotifyPolicy>;
  /** Told how many events each time some are sent, fail or are dropped (metrics). */
  onResult?: (result: NotifyResult, events: number) => void;
  random?: () => number;
}

export class NotifySender {
  readonly #o: NotifySenderOptions;
  readonly #policy: NotifyPolicy;
  readonly #owner = `${hostname()}:${process.pid}:${randomUUID()}`;
  readonly #log: Logger;
  readonly #got: Got;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: NotifySenderOptions) {
    this.#o = options;
    this.#policy = { ...DEFAULT_NOTIFY_POLICY, ...options.policy };
    const origin = new URL(options.url).origin;
    this.#log = options.logger.child({ component: 'notify', webhook: origin });
    this.#got = got.extend({
      // Retries are the outbox's (a failed POST waits in Redis, for whichever worker sends next).
      retry: { limit: 0 },
      throwHttpErrors: false,
      // The body goes to the configured origin only: a redirect elsewhere is answered as a refusal.
      followRedirect: (response) => new URL(response.headers.location ?? '', response.url).origin === origin,
      maxRedirects: 3,
      responseType: 'text',
      timeout: { request: this.#policy.timeoutMs },
    });
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops (a POST on its way is abandoned: its events stay for the next sender) and gives the lease up. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await this.#o.outbox.release(this.#owner).catch(() => false);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let waitMs: number;
      try {
        waitMs = await this.#turn();
      } catch (error) {
        this.#log.warn({ err: coerceError(error) }, 'notifications: outbox unreachable; trying again');
        waitMs = 5 * this.#policy.pollMs;
      }
      await sleep(waitMs, undefined, { signal }).catch(() => undefined);
    }
  }

  /** One look at the outbox, and a POST if one is due; returns how long until the next look (ms). */
  async #turn(): Promise<number> {
    const p = this.#policy;
    const outbox = this.#o.outbox;
    const turn = await outbox.take(this.#owner, { leaseMs: p.leaseMs, count: p.maxBatch, maxAgeMs: p.maxAgeMs });
    if (turn.kind === 'busy') return p.pollMs;
    if (turn.expired > 0) {
      this.#o.onResult?.('dropped', turn.expired);
      this.#log.error({ events: turn.expired, maxAgeMs: p.maxAgeMs }, 'notifications dropped unsent: waited too long');
    }
    if (turn.kind === 'wait') return nextLookMs(turn.ms, p);
    const due = batchDue(turn.entries.length, turn.oldestAgeMs, p);
    if (!due.send) return nextLookMs(due.waitMs, p);

    const ids = turn.entries.map((e) => e.id);
    const events = turn.entries.flatMap((e) => (e.event === undefined ? [] : [e.event]));
    if (events.length < ids.length) this.#log.warn({ events: ids.length - events.length }, 'notifications that no longer parse: dropped');
    if (events.length === 0) {
      await outbox.done(this.#owner, ids);
      return 0;
    }
    const outcome = await this.#post(events);
    if (this.#stop.signal.aborted) return 0;
    const verdict = sendVerdict(outcome, Date.now(), p);
    switch (verdict.kind) {
      case 'sent':
        await outbox.done(this.#owner, ids);
        this.#o.onResult?.('sent', events.length);
        this.#log.info({ events: events.length }, 'notifications sent');
        return events.length === p.maxBatch ? p.minIntervalMs : Math.max(p.minIntervalMs, p.pollMs);
      case 'drop':
        await outbox.done(this.#owner, ids);
        this.#o.onResult?.('dropped', events.length);
        this.#log.error({ events: events.length, reason: verdict.reason }, 'notifications refused by the webhook: dropped');
        return p.minIntervalMs;
      case 'retry': {
        const attempt = turn.attempts + 1;
        const delayMs = retryDelay(attempt, verdict.retryAfterMs, p, this.#o.random ?? Math.random);
        await outbox.retry(this.#owner, delayMs);
        this.#o.onResult?.('failed', events.length);
        this.#log.warn({ events: events.length, reason: verdict.reason, attempt, retryInMs: delayMs }, 'notifications not delivered: retrying');
        return nextLookMs(delayMs, p);
      }
    }
  }

  /** One POST; never throws (a got error carries the request's URL, so only its code is kept). */
  async #post(events: NotifyEvent[]): Promise<WebhookOutcome> {
    const body = JSON.stringify({ events, sentAt: new Date().toISOString() });
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'ghl-ingest-worker' };
    if (this.#o.secret !== undefined) Object.assign(headers, signBody(this.#o.secret, body));
    try {
      const res = await this.#got.post(this.#o.url, { body, headers, signal: this.#stop.signal });
      return { kind: 'answer', status: res.statusCode, retryAfter: res.headers['retry-after'] };
    } catch (error) {
      return { kind: 'network', code: error instanceof RequestError ? error.code || 'ERR_REQUEST' : 'ERR_UNKNOWN' };
    }
  }
}
