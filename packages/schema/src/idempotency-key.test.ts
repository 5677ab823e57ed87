import { describe, expect, it } from 'vitest';
import { canonicalJson, derivedAltId, encodeSourceId, idempotencyKey, isMessageKey, keyOfSourceId } from './idempotency-key.ts';
import { toImportRecord, toJobData } from './job-data.ts';
import { normalizeRecord } from './record.ts';

describe('idempotencyKey', () => {
  it('uses key, then altId, then a hash', () => {
    expect(idempotencyKey('loc', 'src-1', { altId: 'alt-1' })).toBe('k-src-1');
    expect(idempotencyKey('loc', undefined, { altId: 'alt-1' })).toBe('k-alt-1');
    expect(idempotencyKey('loc', undefined, {})).toMatch(/^h-[A-Za-z0-9_-]{43}$/);
  });

  it.each(['123', '0', 'a:b', '::', 'é', ' ', '%41', 'x'.repeat(256)])('makes a valid BullMQ job id of %j', (key) => {
    const id = idempotencyKey('loc', key, {});
    expect(id).not.toContain(':');
    expect(id).not.toMatch(/^\d+$/);
  });

  it('is one-to-one on source ids', () => {
    const ids = ['a:b', 'a%3Ab', 'a b', 'a+b', 'A:b'];
    expect(new Set(ids.map((id) => encodeSourceId(id))).size).toBe(ids.length);
  });

  it('hashes equal bodies alike whatever the key order, and scopes hashes by location', () => {
    const a = idempotencyKey('loc', undefined, { type: 'SMS', message: 'hi' } as object);
    const b = idempotencyKey('loc', undefined, { message: 'hi', type: 'SMS' } as object);
    const c = idempotencyKey('other', undefined, { message: 'hi', type: 'SMS' } as object);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('is stable across runs and machines (a fixed vector)', () => {
    expect(idempotencyKey('loc1', undefined, { type: 'SMS', message: 'hi', direction: 'inbound' } as object)).toBe(
      // sha256("loc1\n" + canonical JSON), computed with openssl
      'h-EVxv1YbUzOKjNET9Wz0nrtBwLx9D1bdlhSoMEXF2IBs',
    );
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
  });
});

describe('every message carries a stable altId', () => {
  const base = { locationId: 'locA', type: 'SMS', contactId: 'c1', message: 'hello' };
  const normalized = (input: Record<string, unknown>) => {
    const r = normalizeRecord(input);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.record;
  };

  it.each([
    ['its own altId, never changed', { ...base, altId: 'src-42' }, 'src-42', 'k-src-42'],
    ['none: derived from the key (a hash of location and body)', base, /^ghl-ingest-h-[A-Za-z0-9_-]{43}$/, /^h-/],
    ['a source key and no altId: derived from the key', { ...base, key: 'row 7' }, 'ghl-ingest-k-row%207', 'k-row%207'],
  ] as const)('%s', (_what, input, altId, key) => {
    const r = normalized(input);
    if (typeof altId === 'string') expect(r.body.altId).toBe(altId);
    else expect(r.body.altId).toMatch(altId);
    if (typeof key === 'string') expect(r.key).toBe(key);
    else expect(r.key).toMatch(key);
    // The same record gives the same altId on every run.
    expect(normalized(input).body.altId).toBe(r.body.altId);
  });

  it('a derived altId brought back (a dead letter exported and imported again) keeps the message its key', () => {
    const first = normalized(base);
    const again = normalized(toImportRecord(toJobData(first, 'backfill')));
    expect(again.key).toBe(first.key);
    expect(again.body.altId).toBe(first.body.altId);
  });

  it('a key too long for an altId is hashed into one', () => {
    const long = 'x'.repeat(300);
    expect(derivedAltId(long, 256)).toMatch(/^ghl-ingest-h-[A-Za-z0-9_-]{43}$/);
    expect(derivedAltId('k-short', 256)).toBe('ghl-ingest-k-short');
  });
});

describe('keyOfSourceId and isMessageKey', () => {
  const base = { locationId: 'locA', type: 'SMS', contactId: 'c1', message: 'hello' };
  const keyOf = (input: Record<string, unknown>) => {
    const r = normalizeRecord(input);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.record.key;
  };
  const hashed = keyOf(base);

  it.each([
    ['a key', { ...base, key: 'msg-991' }, 'msg-991'],
    ['a key that needs encoding', { ...base, key: 'row 7:a/é' }, 'row 7:a/é'],
    ['a key, trimmed as records are read', { ...base, key: ' msg-1 ' }, 'msg-1  '],
    ['an altId without a key', { ...base, altId: 'alt-5' }, 'alt-5'],
    ['a key that looks like a message key', { ...base, key: 'k-1' }, 'k-1'],
    ['a derived altId (an exported dead letter)', { ...base, altId: `ghl-ingest-${hashed}` }, `ghl-ingest-${hashed}`],
  ] as const)('names the message key a record with %s gets', (_what, record, id) => {
    expect(keyOfSourceId(id)).toBe(keyOf(record));
  });

  it.each([
    ['k-msg-991', true],
    ['k-row%207%3Aa', true],
    [hashed, true],
    ['msg-991', false],
    ['k-', false],
    ['k-a b', false],
    ['k-a%3a', false],
    ['h-short', false],
    ['', false],
  ] as const)('isMessageKey(%j) is %j', (value, expected) => {
    expect(isMessageKey(value)).toBe(expected);
  });

  it.each(['123', 'a:b', 'é', '%41', 'x'.repeat(256)])('holds for every key made of %j', (id) => {
    expect(isMessageKey(keyOfSourceId(id))).toBe(true);
  });
});
