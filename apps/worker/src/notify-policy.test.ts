import { describe, expect, it } from 'vitest';
import { batchDue, DEFAULT_NOTIFY_POLICY as P, nextLookMs, retryDelay, sendVerdict, type WebhookOutcome } from './notify-policy.ts';

const NOW = Date.UTC(2026, 0, 2, 10, 0, 0);

describe('batchDue', () => {
  it.each([
    ['nothing waits: look again later', 0, 0, { send: false, waitMs: P.pollMs }],
    ['one fresh event waits for others', 1, 1_000, { send: false, waitMs: 4_000 }],
    ['the oldest has waited its window', 1, 5_000, { send: true }],
    ['a full batch goes at once', 100, 0, { send: true }],
    ['more than a batch goes at once', 250, 10, { send: true }],
  ])('%s', (_name, count, age, expected) => {
    expect(batchDue(count, age, P)).toEqual(expected);
  });
});

describe('nextLookMs', () => {
  it.each([
    [500, 500],
    [3_600_000, 5_000], // a long backoff still renews the lease every third of it
    [-5, 0],
  ])('%i ms -> %i ms', (wait, expected) => {
    expect(nextLookMs(wait, P)).toBe(expected);
  });
});

describe('sendVerdict', () => {
  const answer = (status: number, retryAfter?: string): WebhookOutcome => ({ kind: 'answer', status, retryAfter });
  it.each([
    ['200', answer(200), { kind: 'sent' }],
    ['204', answer(204), { kind: 'sent' }],
    ['500', answer(500), { kind: 'retry', reason: 'answered 500', retryAfterMs: undefined }],
    ['503 with Retry-After in seconds', answer(503, '30'), { kind: 'retry', reason: 'answered 503', retryAfterMs: 30_000 }],
    ['429 with an HTTP date', answer(429, new Date(NOW + 90_000).toUTCString()), { kind: 'retry', reason: 'answered 429', retryAfterMs: 90_000 }],
    ['429 asking for a day: capped at an hour', answer(429, '86400'), { kind: 'retry', reason: 'answered 429', retryAfterMs: 3_600_000 }],
    ['408', answer(408), { kind: 'retry', reason: 'answered 408', retryAfterMs: undefined }],
    ['a reset', { kind: 'network', code: 'ECONNRESET' } as const, { kind: 'retry', reason: 'network error ECONNRESET', retryAfterMs: undefined }],
    ['400', answer(400), { kind: 'drop', reason: 'answered 400' }],
    ['401 (the receiver refused the signature)', answer(401), { kind: 'drop', reason: 'answered 401' }],
    ['404', answer(404), { kind: 'drop', reason: 'answered 404' }],
    ['302 not followed', answer(302), { kind: 'drop', reason: 'answered 302 (a redirect to another origin is not followed)' }],
  ])('%s', (_name, outcome, expected) => {
    expect(sendVerdict(outcome, NOW, P)).toEqual(expected);
  });
});

describe('retryDelay', () => {
  const top = () => 0.999_999;
  it.each([
    [1, undefined, 999],
    [2, undefined, 1_999],
    [4, undefined, 7_999],
    [20, undefined, 299_999], // capped at 5 min
    [1, 30_000, 30_000], // Retry-After wins when it asks for longer
    [20, 1_000, 299_999], // and not when it asks for less
  ])('attempt %i, Retry-After %s -> %i ms at most', (attempt, retryAfter, expected) => {
    expect(retryDelay(attempt, retryAfter, P, top)).toBe(expected);
    expect(retryDelay(attempt, retryAfter, P, () => 0)).toBe(retryAfter ?? 0);
  });
});
