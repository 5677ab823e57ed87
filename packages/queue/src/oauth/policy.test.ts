import { describe, expect, it } from 'vitest';
import { TokenCipher, SealedValueError } from './cipher.ts';
import { classifyTokenAnswer } from './client.ts';
import { refreshAheadMs, refreshBackoffMs, refreshDeadlineMs } from './tokens.ts';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');

describe('classifyTokenAnswer', () => {
  const now = 1_000_000;
  it.each([
    [200, { access_token: 'a', refresh_token: 'r', expires_in: 86399, userType: 'Location', locationId: 'L' }, 'granted'],
    [200, { access_token: 'a', expires_in: 3600 }, 'granted'],
    [200, { token: 'not the shape' }, 'unavailable'],
    [400, { error: 'invalid_grant', error_description: 'Invalid refresh token' }, 'revoked'],
    [401, { error: 'invalid_client' }, 'app-refused'],
    [401, { statusCode: 401, message: 'Invalid JWT' }, 'app-refused'],
    [401, undefined, 'app-refused'],
    [422, { error: 'invalid_request' }, 'refused'],
    [400, { statusCode: 400, message: 'The app is not installed in this location' }, 'refused'],
    [429, {}, 'unavailable'],
    [500, {}, 'unavailable'],
    [503, undefined, 'unavailable'],
    [undefined, undefined, 'unavailable'],
  ] as const)('%s %j → %s', (status, body, kind) => {
    expect(classifyTokenAnswer(status, body, now).kind).toBe(kind);
  });

  it('a grant expires expires_in seconds from now; Retry-After is honoured; reasons carry no token', () => {
    const g = classifyTokenAnswer(200, { access_token: 'secret-a', refresh_token: 'secret-r', expires_in: 60 }, now);
    expect(g).toMatchObject({ kind: 'granted', grant: { expiresAt: now + 60_000, refreshToken: 'secret-r' } });
    expect(classifyTokenAnswer(429, {}, now, '7')).toMatchObject({ retryAfterMs: 7_000 });
    const refused = classifyTokenAnswer(400, { error: 'invalid_grant', error_description: 'Invalid refresh token' }, now);
    expect(refused.kind === 'revoked' && refused.reason).toBe('HighLevel answered 400 invalid_grant: Invalid refresh token');
  });
});

describe('refresh timing', () => {
  it.each([
    [86_399_000, 30_000], // HighLevel's day-long token: 30 s ahead, as its SDK
    [120_000, 30_000],
    [60_000, 15_000],
    [3_000, 750],
    [0, 0],
  ])('a token living %i ms is refreshed %i ms before its end', (life, ahead) => {
    expect(refreshAheadMs(life)).toBe(ahead);
  });

  it.each([
    [65_000, 48_750], // the worker's lease with HTTP_TIMEOUT_MS 30 s (2 × 30 s + 5 s): longer than a post's timeout
    [7_000, 5_250], // HTTP_TIMEOUT_MS 1 s
    [300, 225],
    [0, 0],
  ])('a refresh under a %i ms lease waits %i ms for its answer', (lease, ms) => {
    expect(refreshDeadlineMs(lease)).toBe(ms);
  });

  it.each([
    [1, 1_000],
    [2, 2_000],
    [4, 8_000],
    [7, 60_000],
    [30, 60_000],
  ])('after %i failed refreshes, every process waits %i ms', (failures, ms) => {
    expect(refreshBackoffMs(failures)).toBe(ms);
  });
});

describe('TokenCipher (AES-256-GCM)', () => {
  it('seals and opens; the sealed form holds neither the token nor the key', () => {
    const c = TokenCipher.fromSetting(KEY_A);
    const sealed = c.seal('rt-very-secret', 'p:location:L1:refresh');
    expect(sealed).toMatch(/^v1\.[0-9a-f]{8}\./);
    expect(sealed).not.toContain('rt-very-secret');
    expect(sealed).not.toContain(KEY_A);
    expect(c.open(sealed, 'p:location:L1:refresh')).toBe('rt-very-secret');
    expect(c.seal('rt-very-secret', 'p:location:L1:refresh')).not.toBe(sealed); // a fresh IV each time
  });

  it('refuses a value moved to another record, altered, or sealed with a key it does not hold', () => {
    const c = TokenCipher.fromSetting(KEY_A);
    const sealed = c.seal('token', 'p:location:L1:access');
    expect(() => c.open(sealed, 'p:location:L2:access')).toThrow(SealedValueError);
    const parts = sealed.split('.');
    parts[4] = Buffer.from('tampered').toString('base64url');
    expect(() => c.open(parts.join('.'), 'p:location:L1:access')).toThrow(SealedValueError);
    expect(() => TokenCipher.fromSetting(KEY_B).open(sealed, 'p:location:L1:access')).toThrow(/sealed with key [0-9a-f]{8}, which GHL_TOKEN_KEY does not hold/);
    expect(() => c.open('plain-text-token', 'x')).toThrow(SealedValueError);
  });

  it('rotation: the first key seals, every key opens, and values sealed with an older key say so', () => {
    const old = TokenCipher.fromSetting(KEY_A);
    const sealed = old.seal('token', 'ctx');
    const rotated = TokenCipher.fromSetting(`${KEY_B},${KEY_A}`);
    expect(rotated.open(sealed, 'ctx')).toBe('token');
    expect(rotated.isStale(sealed)).toBe(true);
    expect(rotated.isStale(rotated.seal('token', 'ctx'))).toBe(false);
  });

  it.each([
    ['', /is empty/],
    ['c2hvcnQ=', /not 32 bytes in base64 \(it decodes to 5\)/],
    ['not base64 at all!!', /not 32 bytes/],
    [`${KEY_A},short`, /key 2 of 2/],
  ])('a bad GHL_TOKEN_KEY %j is refused, without echoing it', (setting, message) => {
    expect(() => TokenCipher.fromSetting(setting)).toThrow(message);
    try {
      TokenCipher.fromSetting(setting);
    } catch (error) {
      if (setting !== '') expect((error as Error).message).not.toContain(setting);
    }
  });
});
