/**
 * What a notification webhook receives (NOTIFY_WEBHOOK_URL): the events, as the README's
 * Notifications section shows them, and how each is made from what the product recorded. Only
 * what a person needs to act is in an event: location, message key, class, the reason the product
 * wrote, the HTTP status. Never a message's body, a token, a secret or HighLevel's raw error body;
 * a reason may quote HighLevel's error message, so anything in it that looks like a credential is
 * masked (`maskSecrets`).
 */
import { randomUUID } from 'node:crypto';
import type { DeadLetterRecord, FailureClass } from '../dead-letter.ts';

interface EventBase {
  /** Unique per event: a receiver that sees one twice (a send retried after a lost answer) drops the second. */
  id: string;
  /** When it happened, ISO 8601. */
  at: string;
  locationId: string;
}

/** A location stopped until a person resumes it (`ingest resume`): its token was rejected, or it has none. */
export interface LocationPausedEvent extends EventBase {
  type: 'location.paused';
  reason: string;
}

/** A location waits until its daily budget resets. */
export interface LocationParkedEvent extends EventBase {
  type: 'location.parked';
  reason: string;
  /** ISO 8601. */
  until: string;
}

/** A message failed for good: `ingest dlq show <recordId>` has the whole record. */
export interface DeadLetterAddedEvent extends EventBase {
  type: 'dead_letter.added';
  key: string;
  recordId: string;
  class: FailureClass;
  reason: string;
  httpStatus?: number;
  attempts: number;
}

export type NotifyEvent = LocationPausedEvent | LocationParkedEvent | DeadLetterAddedEvent;
export type NotifyEventType = NotifyEvent['type'];

/** An event for the outbox, with what makes a second one of the same happening a no-op. */
export interface Notice {
  event: NotifyEvent;
  /** Events with this key within `dedupeMs` of the first are dropped (several jobs in flight meet the same 401). */
  dedupe: string;
  dedupeMs: number;
}

/** Longest reason sent, in characters (the dead-letter record keeps it whole). */
export const REASON_MAX_CHARS = 500;
/** A location's pauses within this of the first are the same pause (its jobs in flight all meet it). */
export const PAUSE_DEDUPE_MS = 60_000;
const DEAD_LETTER_DEDUPE_MS = 600_000;

export function locationPaused(locationId: string, reason: string, now = Date.now()): Notice {
  return {
    event: { id: randomUUID(), type: 'location.paused', at: new Date(now).toISOString(), locationId, reason: maskSecrets(reason) },
    dedupe: `paused:${locationId}`,
    dedupeMs: PAUSE_DEDUPE_MS,
  };
}

/** Parked until `until` (epoch ms): one event per location and day, however many jobs meet the spent budget. */
export function locationParked(locationId: string, until: number, reason: string, now = Date.now()): Notice {
  return {
    event: {
      id: randomUUID(),
      type: 'location.parked',
      at: new Date(now).toISOString(),
      locationId,
      reason: maskSecrets(reason),
      until: new Date(until).toISOString(),
    },
    dedupe: `parked:${locationId}:${until}`,
    dedupeMs: Math.max(PAUSE_DEDUPE_MS, until - now + PAUSE_DEDUPE_MS),
  };
}

/** From the record just written (never its job, raw data or `apiError`). */
export function deadLetterAdded(record: Omit<DeadLetterRecord, 'v' | 'id'> & { id?: string }): Notice {
  const recordId = record.id ?? `${record.locationId}.${record.key}`;
  return {
    event: {
      id: randomUUID(),
      type: 'dead_letter.added',
      at: new Date(record.lastAttemptAt).toISOString(),
      locationId: record.locationId,
      key: record.key,
      recordId,
      class: record.class,
      reason: maskSecrets(record.reason),
      ...(record.httpStatus === undefined ? {} : { httpStatus: record.httpStatus }),
      attempts: record.attempts,
    },
    dedupe: `dead:${recordId}:${record.lastAttemptAt}`,
    dedupeMs: DEAD_LETTER_DEDUPE_MS,
  };
}

/** `Bearer <anything>`, and runs of 20 or more token characters holding a letter and a digit (JWTs, API keys, signed query strings). */
const BEARER = /\bBearer\s+\S+/gi;
const OPAQUE = /[A-Za-z0-9._~+/=-]{20,}/g;

/**
 * Text the product wrote, fit to leave it: credentials masked as `[redacted]`, at most
 * REASON_MAX_CHARS. Prose survives (its words are short); an id of 20 characters or more is
 * masked too, a price worth paying for never echoing a token an upstream put in its message.
 */
export function maskSecrets(text: string): string {
  const masked = text.replace(BEARER, 'Bearer [redacted]').replace(OPAQUE, (run) => (/[A-Za-z]/.test(run) && /\d/.test(run) ? '[redacted]' : run));
  return masked.length > REASON_MAX_CHARS ? `${masked.slice(0, REASON_MAX_CHARS - 1)}…` : masked;
}
