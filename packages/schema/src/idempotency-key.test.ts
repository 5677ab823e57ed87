import { describe, expect, it } from 'vitest';
import { canonicalJson, encodeSourceId, idempotencyKey } from './idempotency-key.ts';

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
