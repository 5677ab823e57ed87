import { describe, expect, it } from 'vitest';
import { deadLetterAdded, locationParked, locationPaused, maskSecrets, REASON_MAX_CHARS } from './events.ts';

describe('maskSecrets', () => {
  it.each([
    ['prose stays', "HighLevel rejected the location's token (401): Invalid JWT", "HighLevel rejected the location's token (401): Invalid JWT"],
    ['validation messages stay', 'message must be shorter than or equal to 5 characters', 'message must be shorter than or equal to 5 characters'],
    ['setting names stay (no digit)', 'no token configured (GHL_TOKENS_FILE, GHL_TOKEN)', 'no token configured (GHL_TOKENS_FILE, GHL_TOKEN)'],
    ['a bearer header', 'echoed Authorization: Bearer abc.def', 'echoed Authorization: Bearer [redacted]'],
    ['a JWT', 'token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig123 expired', 'token [redacted] expired'],
    ['an API key', 'key pit-9f8e7d6c5b4a39281706 refused', 'key [redacted] refused'],
    ['a signed query string', 'fetch https://files.example.com/a?sig=ab12cd34ef56ab78cd90 failed', 'fetch https://files.example.com/a?[redacted] failed'],
    ['long words without digits stay', 'internationalisation-considerations apply', 'internationalisation-considerations apply'],
  ])('%s', (_name, text, expected) => {
    expect(maskSecrets(text)).toBe(expected);
  });

  it(`cuts at ${REASON_MAX_CHARS} characters`, () => {
    const cut = maskSecrets('word '.repeat(200));
    expect(cut).toHaveLength(REASON_MAX_CHARS);
    expect(cut.endsWith('…')).toBe(true);
  });
});

describe('the events', () => {
  const now = Date.UTC(2026, 0, 2, 10, 0, 0);

  it('location.paused: one per location a minute', () => {
    const notice = locationPaused('locA', 'HighLevel rejected the token (401)', now);
    expect(notice).toEqual({
      event: {
        id: expect.any(String) as unknown,
        type: 'location.paused',
        at: '2026-01-02T10:00:00.000Z',
        locationId: 'locA',
        reason: 'HighLevel rejected the token (401)',
      },
      dedupe: 'paused:locA',
      dedupeMs: 60_000,
    });
    expect(locationPaused('locA', 'x', now).event.id).not.toBe(notice.event.id);
  });

  it('location.parked: one per location and day, kept until the reset', () => {
    const until = Date.UTC(2026, 0, 3);
    const notice = locationParked('locA', until, 'daily budget spent', now);
    expect(notice.event).toMatchObject({ type: 'location.parked', until: '2026-01-03T00:00:00.000Z', reason: 'daily budget spent' });
    expect(notice.dedupe).toBe(`parked:locA:${until}`);
    expect(notice.dedupeMs).toBe(until - now + 60_000);
  });

  it('dead_letter.added: the record less its job, raw data and HighLevel body', () => {
    const notice = deadLetterAdded({
      locationId: 'locA',
      key: 'k-m1',
      job: { v: 1, key: 'k-m1', locationId: 'locA', body: { message: 'private words' } } as never,
      raw: { token: 'nope' },
      class: 'permanent',
      reason: 'HighLevel refused the message (422): message too long',
      httpStatus: 422,
      apiError: '{"message":"Bearer leaked-token-123456789012"}',
      attempts: 1,
      firstAttemptAt: now - 5_000,
      lastAttemptAt: now,
      worker: 'host:1',
    });
    expect(notice.event).toEqual({
      id: expect.any(String) as unknown,
      type: 'dead_letter.added',
      at: '2026-01-02T10:00:00.000Z',
      locationId: 'locA',
      key: 'k-m1',
      recordId: 'locA.k-m1',
      class: 'permanent',
      reason: 'HighLevel refused the message (422): message too long',
      httpStatus: 422,
      attempts: 1,
    });
    expect(JSON.stringify(notice)).not.toMatch(/private words|nope|leaked|host:1/);
    expect(notice.dedupe).toBe(`dead:locA.k-m1:${now}`);
  });
});
