/**
 * How a notification is signed (NOTIFY_WEBHOOK_SECRET) and how a receiver checks it: HMAC-SHA256
 * over `<timestamp>.<raw body>`, hex, in `X-Ghl-Ingest-Signature: sha256=<hex>`, with the
 * timestamp (Unix seconds) in `X-Ghl-Ingest-Timestamp`. Signing the timestamp with the body means
 * a captured request cannot be replayed later under a fresh timestamp.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-ghl-ingest-signature';
export const TIMESTAMP_HEADER = 'x-ghl-ingest-timestamp';

/** The two headers for `body`, sent at `nowMs`. */
export function signBody(secret: string, body: string, nowMs = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `sha256=${digest(secret, timestamp, body)}` };
}

/**
 * A receiver's check: the signature matches the raw body and timestamp (compared in constant
 * time), and the timestamp is within `toleranceS` (default 300) of `nowMs`.
 */
export function verifySignature(
  secret: string,
  body: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  nowMs = Date.now(),
  toleranceS = 300,
): boolean {
  const { timestamp, signature } = headers;
  if (timestamp === undefined || signature === undefined || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > toleranceS) return false;
  const expected = Buffer.from(`sha256=${digest(secret, timestamp, body)}`);
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function digest(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}
