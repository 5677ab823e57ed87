import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SIGNATURE_HEADER, signBody, TIMESTAMP_HEADER, verifySignature } from './signature.ts';

describe('notification signatures', () => {
  const now = 1_767_350_000_000;
  const body = '{"events":[],"sentAt":"2026-01-02T10:33:20.000Z"}';
  const headers = signBody('s3cret', body, now);
  const given = { timestamp: headers[TIMESTAMP_HEADER], signature: headers[SIGNATURE_HEADER] };

  it('is HMAC-SHA256 of "<timestamp>.<body>", hex, after sha256=', () => {
    expect(given.timestamp).toBe('1767350000');
    const hex = createHmac('sha256', 's3cret').update(`1767350000.${body}`).digest('hex');
    expect(given.signature).toBe(`sha256=${hex}`);
  });

  it.each([
    ['the same body, secret and a fresh timestamp', 's3cret', body, given, now + 10_000, true],
    ['another secret', 'other', body, given, now, false],
    ['a changed body', 's3cret', body.replace('[]', '[{}]'), given, now, false],
    ['a replay with a new timestamp', 's3cret', body, { ...given, timestamp: '1767350100' }, now + 100_000, false],
    ['a stale timestamp (over 5 min)', 's3cret', body, given, now + 301_000, false],
    ['no signature', 's3cret', body, { timestamp: given.timestamp, signature: undefined }, now, false],
    ['a truncated signature', 's3cret', body, { ...given, signature: given.signature?.slice(0, 20) }, now, false],
    ['a timestamp that is no number', 's3cret', body, { ...given, timestamp: '1e9' }, now, false],
  ])('verifies: %s', (_name, secret, text, sent, at, ok) => {
    expect(verifySignature(secret, text, sent, at)).toBe(ok);
  });
});
