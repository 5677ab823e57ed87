/**
 * The notification outbox (NOTIFY_WEBHOOK_URL): events waiting to be sent, in Redis, so that the
 * process where a location paused or a message was dead-lettered need not be the one that sends
 * it, and a crash or restart between the two loses nothing. Owns the keys `{notify}:events` (a
 * capped STREAM, oldest first), `{notify}:sender` (HASH: the send lease and the backoff of a
 * failed send) and `{notify}:seen:<dedupe>` (STRINGs with a TTL: one event per happening), all in
 * one hash slot by design so its scripts (`commands/notify-*.lua`) run on Redis Cluster; and the
 * send lease, which one worker process at a time holds while it sends.
 */
import type { RedisClient } from '../connection.ts';
import { defineScripts } from '../scripts.ts';
import type { Notice, NotifyEvent } from './events.ts';

export interface OutboxKeys {
  /** STREAM: events waiting, field `e` (JSON). */
  events: string;
  /** HASH: owner, leaseUntil, attempts, retryAt. */
  sender: string;
  /** STRING with a TTL: an event with this dedupe key was added lately. */
  seen(dedupe: string): string;
}

export function outboxKeys(prefix: string): OutboxKeys {
  return {
    events: `${prefix}:{notify}:events`,
    sender: `${prefix}:{notify}:sender`,
    seen: (dedupe) => `${prefix}:{notify}:seen:${dedupe}`,
  };
}

/** Events the outbox keeps at most; past it the oldest are dropped (and counted). */
export const OUTBOX_CAPACITY = 10_000;

/** An event as the outbox holds it. */
export interface OutboxEntry {
  /** The stream id (what `settle` takes). */
  id: string;
  /** Undefined when the entry no longer parses: it leaves with the batch, unsent. */
  event: NotifyEvent | undefined;
}

/** What a sender's turn found (`take`). */
export type OutboxTurn =
  | { kind: 'busy' }
  | { kind: 'wait'; expired: number; attempts: number; ms: number }
  | { kind: 'events'; expired: number; attempts: number; oldestAgeMs: number; entries: OutboxEntry[] };

export interface TakeOptions {
  /** How long the lease lasts unless renewed (ms). */
  leaseMs: number;
  /** Events at most. */
  count: number;
  /** Events older than this are dropped unsent (ms); counted as `expired`. */
  maxAgeMs: number;
}

export class NotifyOutbox {
  readonly #redis: RedisClient;
  readonly #keys: OutboxKeys;
  readonly #capacity: number;

  /** @param capacity events kept at most; default OUTBOX_CAPACITY */
  constructor(redis: RedisClient, prefix: string, capacity = OUTBOX_CAPACITY) {
    this.#redis = redis;
    this.#keys = outboxKeys(prefix);
    this.#capacity = capacity;
    defineScripts(redis);
  }

  /** Adds the notice's event unless its happening was added within its dedupe time; says how many old events made room. */
  async add(notice: Notice): Promise<{ added: boolean; dropped: number }> {
    const [added, dropped] = await this.#redis.ghlNotifyAdd(
      this.#keys.events,
      this.#keys.seen(notice.dedupe),
      JSON.stringify(notice.event),
      Math.max(1, Math.round(notice.dedupeMs)),
      this.#capacity,
    );
    return { added: added === 1, dropped };
  }

  /** Takes or renews the send lease for `owner` and reads the head of the outbox (see `commands/notify-take.lua`). */
  async take(owner: string, options: TakeOptions): Promise<OutboxTurn> {
    const reply = await this.#redis.ghlNotifyTake(this.#keys.events, this.#keys.sender, owner, options.leaseMs, options.count, options.maxAgeMs);
    const [kind, expired, attempts, value] = reply;
    if (kind === 'busy') return { kind: 'busy' };
    if (kind === 'wait') return { kind: 'wait', expired: Number(expired), attempts: Number(attempts), ms: Number(value) };
    const entries: OutboxEntry[] = [];
    for (let i = 4; i + 1 < reply.length; i += 2) entries.push({ id: String(reply[i]), event: parseEvent(String(reply[i + 1])) });
    return { kind: 'events', expired: Number(expired), attempts: Number(attempts), oldestAgeMs: Number(value), entries };
  }

  /** The events went, or were refused for good: they leave the outbox and the backoff ends. Returns how many left. */
  async done(owner: string, ids: readonly string[]): Promise<number> {
    return this.#redis.ghlNotifySettle(this.#keys.events, this.#keys.sender, owner, 'done', 0, ...ids);
  }

  /** The send failed: every process waits `delayMs` before the next. Returns the failed sends in a row, or undefined when `owner` lost the lease. */
  async retry(owner: string, delayMs: number): Promise<number | undefined> {
    const attempts = await this.#redis.ghlNotifySettle(this.#keys.events, this.#keys.sender, owner, 'retry', Math.max(0, Math.round(delayMs)));
    return attempts < 0 ? undefined : attempts;
  }

  /** Gives the lease up (a stopping sender), so another process takes over at its next look. */
  async release(owner: string): Promise<boolean> {
    return (await this.#redis.ghlNotifyRelease(this.#keys.sender, owner)) === 1;
  }

  /** Events waiting. */
  async length(): Promise<number> {
    return this.#redis.xlen(this.#keys.events);
  }
}

function parseEvent(json: string): NotifyEvent | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && 'type' in value && 'id' in value ? (value as NotifyEvent) : undefined;
  } catch {
    return undefined;
  }
}
