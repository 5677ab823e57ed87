import { describe, expect, it } from 'vitest';
import { apiHealth, CAPPED_ATTEMPTS, classify, type Outcome } from './classify.ts';

const now = Date.parse('2026-11-24T10:00:00Z');
const answer = (status: number, body: unknown = '', retryAfter?: string): Outcome => ({
  kind: 'answer',
  status,
  body: typeof body === 'string' ? body : JSON.stringify(body),
  retryAfter,
});

describe('classify', () => {
  it.each([
    [answer(201, { success: true, messageId: 'm1' }), { class: 'delivered', messageId: 'm1' }],
    [answer(200, { messageId: 'm2', extra: 1 }), { class: 'delivered', messageId: 'm2' }],
    [answer(201, ''), { class: 'suspect', maxAttempts: CAPPED_ATTEMPTS }],
    [answer(201, { success: true }), { class: 'suspect' }],
    [answer(201, { messageId: '' }), { class: 'suspect' }],
    [answer(204), { class: 'suspect' }],
    [
      answer(400, { statusCode: 400, message: 'Invalid conversationProviderId' }),
      { class: 'permanent', reason: 'HighLevel refused the message (400): Invalid conversationProviderId' },
    ],
    [answer(403), { class: 'permanent' }],
    [answer(404), { class: 'permanent' }],
    [
      answer(422, { statusCode: 422, message: ['type must be one of', 'message must be a string'] }),
      { class: 'permanent', reason: 'HighLevel refused the message (422): type must be one of; message must be a string' },
    ],
    [answer(409), { class: 'permanent' }],
    [answer(401, { statusCode: 401, message: 'Invalid JWT' }), { class: 'credentials', reason: "HighLevel rejected the location's token (401): Invalid JWT" }],
    [answer(429), { class: 'rate-limited', retryAfterMs: undefined }],
    [answer(429, '', '7'), { class: 'rate-limited', retryAfterMs: 7000 }],
    [answer(408), { class: 'transient', maxAttempts: undefined }],
    [answer(425), { class: 'transient', maxAttempts: undefined }],
    [answer(502), { class: 'transient', maxAttempts: undefined }],
    [answer(503, '', 'Tue, 24 Nov 2026 10:01:00 GMT'), { class: 'transient', retryAfterMs: 60_000, maxAttempts: undefined }],
    [answer(504), { class: 'transient', maxAttempts: undefined }],
    [answer(500, { statusCode: 500, message: 'Internal server error' }), { class: 'transient', maxAttempts: CAPPED_ATTEMPTS }],
    [answer(501), { class: 'transient', maxAttempts: CAPPED_ATTEMPTS }],
    [
      { kind: 'network', code: 'ETIMEDOUT', message: 'Timeout awaiting request', sent: true },
      { class: 'transient', maxAttempts: undefined },
    ],
    [{ kind: 'network', code: 'ECONNRESET', message: 'socket hang up', sent: true }, { class: 'transient' }],
    [{ kind: 'network', code: 'EAI_AGAIN', message: 'getaddrinfo EAI_AGAIN', sent: false }, { class: 'transient' }],
  ] as const)('%j -> %j', (outcome, expected) => {
    expect(classify(outcome, now)).toMatchObject(expected);
  });

  it('keeps long API messages short in the reason', () => {
    const c = classify(answer(422, { message: 'x'.repeat(5000) }), now);
    expect(c.class === 'permanent' && c.reason.length).toBeLessThan(400);
  });
});

describe('apiHealth', () => {
  it.each([
    [{ kind: 'network', code: 'ECONNREFUSED', message: 'refused', sent: false } as const, 'down'],
    [{ kind: 'network', code: 'ETIMEDOUT', message: 'timeout', sent: true } as const, 'down'],
    [answer(502), 'down'],
    [answer(503), 'down'],
    [answer(504), 'down'],
    [answer(500), undefined], // HighLevel answers 500 to some malformed messages
    [answer(201, { messageId: 'm1' }), 'up'],
    [answer(201, ''), 'up'],
    [answer(422), 'up'],
    [answer(408), 'up'],
  ])('%o is %s', (outcome, expected) => {
    expect(apiHealth(outcome)).toBe(expected);
  });
});
