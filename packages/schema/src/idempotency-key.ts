/**
 * The idempotency key of a message: its BullMQ job id, its delivery-ledger key, and the id
 * people use to find it. Stable across runs and machines; never contains `:`; never all digits.
 *
 * - `key` if the source gave one, else `altId` (the source system's message id): `k-<encoded>`
 * - otherwise a hash of the location and the normalised body: `h-<43 chars of base64url SHA-256>`
 *
 * `<encoded>` is the id with every character outside `[A-Za-z0-9._~-]` percent-encoded, so the
 * mapping is one-to-one and readable for ordinary ids. Keys are scoped to their location by the
 * queue and ledger that hold them, so two locations may use the same source ids.
 */
import { createHash } from 'node:crypto';

export function idempotencyKey(locationId: string, key: string | undefined, body: { altId?: string }): string {
  // A body that carries an altId we derived from a hash key (an exported dead letter imported
  // again) keeps that key: the same message, the same ledger entry.
  const derived = body.altId === undefined ? undefined : DERIVED_HASH_KEY.exec(body.altId)?.[1];
  if (key === undefined && derived !== undefined) return derived;
  const source = key ?? body.altId;
  if (source !== undefined) return `k-${encodeSourceId(source)}`;
  const digest = createHash('sha256').update(locationId).update('\n').update(canonicalJson(body)).digest('base64url');
  return `h-${digest}`;
}

/**
 * The message key of a record that gave `id` as its `key`, or as its `altId` when it had no `key`
 * (trimmed, as records are read): what `status` looks a message up by when the caller knows only
 * its own id. An altId this product derived (an exported dead letter's) names its hash key again.
 */
export function keyOfSourceId(id: string): string {
  // No body: the source id decides; the location only ever scopes hash keys, never reached here.
  return idempotencyKey('', undefined, { altId: id.trim() });
}

const MESSAGE_KEY = /^(?:k-(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})+|h-[A-Za-z0-9_-]{43})$/;

/** Whether `value` is a message key as `idempotencyKey` makes them (`k-<encoded id>`, `h-<hash>`), not a source's own id. */
export function isMessageKey(value: string): boolean {
  return MESSAGE_KEY.test(value);
}

/** Percent-encodes everything but unreserved URL characters (RFC 3986). */
export function encodeSourceId(id: string): string {
  return id.replace(/[^A-Za-z0-9._~-]/gu, (ch) =>
    Array.from(new TextEncoder().encode(ch), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

/** JSON with object keys sorted at every depth, so equal values always hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return stringify(value) ?? 'null';
}

/** JSON.stringify as it behaves: undefined for functions, symbols and undefined. */
const stringify: (value: unknown) => string | undefined = JSON.stringify;

/** What every derived altId starts with. */
export const DERIVED_ALT_ID_PREFIX = 'ghl-ingest-';
const DERIVED_HASH_KEY = /^ghl-ingest-(h-[A-Za-z0-9_-]{43})$/;

/**
 * The altId of a message whose source gave none: `ghl-ingest-<key>` (its idempotency key), so it
 * is the same on every run and machine and HighLevel can be asked for it later; a key too long
 * for an altId is hashed (`ghl-ingest-h-<sha256>`). A source's own altId is never changed.
 */
export function derivedAltId(key: string, maxChars: number): string {
  const id = `${DERIVED_ALT_ID_PREFIX}${key}`;
  if (id.length <= maxChars) return id;
  return `${DERIVED_ALT_ID_PREFIX}h-${createHash('sha256').update(key).digest('base64url')}`;
}
