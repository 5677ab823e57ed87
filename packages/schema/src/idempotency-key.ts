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
  const source = key ?? body.altId;
  if (source !== undefined) return `k-${encodeSourceId(source)}`;
  const digest = createHash('sha256').update(locationId).update('\n').update(canonicalJson(body)).digest('base64url');
  return `h-${digest}`;
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
