/**
 * Replay protection for marketplace webhooks, as HighLevel's Webhook Integration Guide asks: the
 * signature proves who wrote a body, not when, so a captured UNINSTALL sent again after a reinstall
 * would pause the location and delete its new tokens. Each event carries `timestamp` (ISO 8601) and
 * `webhookId`: an event older (or newer) than the window is refused, and a `webhookId` seen within
 * the window is acknowledged without acting on it again.
 */
import type { RedisClient } from '@ghl-ingest/queue';

/** How far `timestamp` may be from our clock, either way. HighLevel's guide: 5 minutes. */
export const REPLAY_WINDOW_MS = 5 * 60_000;

/**
 * How long a `webhookId` is remembered: an event is accepted only while its timestamp is within the
 * window of our clock, so a copy can arrive at most two windows after the first.
 */
export const SEEN_TTL_SECONDS = (2 * REPLAY_WINDOW_MS) / 1000;

export type ReplayVerdict =
  /** First sight of this webhookId, in the window: act on it (and `forget` it if acting fails). */
  | { kind: 'fresh' }
  /** Seen already: acknowledge and do nothing. */
  | { kind: 'duplicate' }
  /** No usable timestamp or webhookId, or a timestamp outside the window: refuse. */
  | { kind: 'refused'; reason: string };

export class WebhookReplayGuard {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #now: () => number;

  constructor(redis: RedisClient, prefix: string, now: () => number = Date.now) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#now = now;
  }

  /** Checks the event's timestamp, then claims its webhookId (SET NX EX: one claim wins). */
  async check(event: Readonly<Record<string, unknown>>): Promise<ReplayVerdict> {
    const verdict = windowVerdict(event, this.#now());
    if (verdict !== undefined) return verdict;
    const claimed = await this.#redis.set(this.#key(event.webhookId as string), '1', 'EX', SEEN_TTL_SECONDS, 'NX');
    return claimed === null ? { kind: 'duplicate' } : { kind: 'fresh' };
  }

  /** Acting on a fresh event failed: let a resend of it be acted on. */
  async forget(webhookId: string): Promise<void> {
    await this.#redis.del(this.#key(webhookId));
  }

  #key(webhookId: string): string {
    return `${this.#prefix}:webhook-seen:${webhookId}`;
  }
}

/** Undefined when the event has a webhookId and a timestamp within the window of `now`; else why not. */
export function windowVerdict(event: Readonly<Record<string, unknown>>, now: number): ReplayVerdict | undefined {
  const { webhookId, timestamp } = event;
  if (typeof webhookId !== 'string' || webhookId === '' || webhookId.length > 200) {
    return { kind: 'refused', reason: 'the event has no webhookId, so a replay of it could not be told apart' };
  }
  const at = typeof timestamp === 'string' ? Date.parse(timestamp) : Number.NaN;
  if (!Number.isFinite(at)) return { kind: 'refused', reason: 'the event has no ISO 8601 timestamp' };
  if (Math.abs(now - at) > REPLAY_WINDOW_MS) {
    return {
      kind: 'refused',
      reason: `the event's timestamp is ${Math.round((now - at) / 1000)} s from now; at most ${REPLAY_WINDOW_MS / 1000} s either way is accepted`,
    };
  }
  return undefined;
}
