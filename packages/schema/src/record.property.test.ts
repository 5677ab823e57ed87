import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MESSAGE_TYPES } from './body.ts';
import { normalizeRecord } from './record.ts';
import { inboundMessageBodySchema } from './strict.ts';

describe('normalizeRecord on arbitrary input', () => {
  it('never throws on any JSON value, and every issue has a path and a message', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const r = normalizeRecord(value);
        if (!r.ok) {
          expect(r.issues.length).toBeGreaterThan(0);
          for (const issue of r.issues) {
            expect(typeof issue.path).toBe('string');
            expect(issue.message.length).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on record-shaped objects with arbitrary values, and accepted output is strict', () => {
    const field = fc.constantFrom(
      'type',
      'message',
      'contactId',
      'conversationId',
      'conversationProviderId',
      'html',
      'subject',
      'emailFrom',
      'emailTo',
      'emailCc',
      'emailBcc',
      'attachments',
      'date',
      'direction',
      'altId',
      'key',
      'call',
    );
    const value = fc.oneof(
      fc.anything(),
      fc.constantFrom(...MESSAGE_TYPES),
      fc.string(),
      fc.constantFrom('2024-05-01T12:00:00Z', '+15037081210', 'a@b.co', 'https://x.test/a', 'inbound'),
      fc.record({ to: fc.string(), from: fc.string(), status: fc.string() }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(fc.dictionary(field, value), (partial) => {
        const r = normalizeRecord({ locationId: 'loc', contactId: 'c', ...partial });
        if (r.ok) expect(inboundMessageBodySchema.safeParse(r.record.body).success).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
