import { describe, expect, it } from 'vitest';
import { LIMITS } from './limits.ts';
import { normalizeRecord, type NormalizeOptions } from './record.ts';

const sms = { locationId: 'loc1', type: 'SMS', contactId: 'c1', message: 'hello' };

function issuesOf(input: unknown, options?: NormalizeOptions) {
  const r = normalizeRecord(input, options);
  if (r.ok) throw new Error(`expected a rejection, got ${JSON.stringify(r.record)}`);
  return r.issues;
}

function bodyOf(input: unknown, options?: NormalizeOptions) {
  const r = normalizeRecord(input, options);
  if (!r.ok) throw new Error(`expected acceptance, got ${JSON.stringify(r.issues)}`);
  return r.record.body;
}

describe('rules per type', () => {
  it.each([
    ['a Call without call', { locationId: 'l', type: 'Call', contactId: 'c', conversationProviderId: 'p' }, ['call.to', 'call.from']],
    ['a Call without call.from', { locationId: 'l', type: 'Call', contactId: 'c', conversationProviderId: 'p', call: { to: '+15037081210' } }, ['call.from']],
    ['an Email without html or message', { locationId: 'l', type: 'Email', contactId: 'c', subject: 's' }, ['html']],
    ['an SMS without message or attachment', { locationId: 'l', type: 'SMS', contactId: 'c' }, ['message']],
    ['a WhatsApp without a provider', { locationId: 'l', type: 'WhatsApp', contactId: 'c', message: 'm' }, ['conversationProviderId']],
    [
      'a Call without a provider',
      { locationId: 'l', type: 'Call', contactId: 'c', call: { to: '+15037081210', from: '+15037081211' } },
      ['conversationProviderId'],
    ],
    ['a message with neither conversationId nor contactId', { locationId: 'l', type: 'SMS', message: 'm' }, ['conversationId']],
    ['a record without type', { locationId: 'l', contactId: 'c', message: 'm' }, ['type']],
    ['a record without locationId', { type: 'SMS', contactId: 'c', message: 'm' }, ['locationId']],
  ])('refuses %s', (_name, input, paths) => {
    expect(issuesOf(input).map((i) => i.path)).toEqual(paths);
  });

  it.each([
    ['an SMS with only an attachment', { ...sms, message: undefined, attachments: ['https://x.test/a.png'] }],
    ['an SMS on a conversation', { locationId: 'l', type: 'SMS', conversationId: 'conv', message: 'm' }],
    ['an Email with html only', { locationId: 'l', type: 'Email', contactId: 'c', html: '<p>x</p>' }],
    ['an Email with message only', { locationId: 'l', type: 'Email', contactId: 'c', message: 'x' }],
    [
      'a Call with a provider',
      { locationId: 'l', type: 'Call', contactId: 'c', conversationProviderId: 'p', call: { to: '+15037081210', from: '+15037081211', status: 'completed' } },
    ],
    ['a Custom with a provider', { locationId: 'l', type: 'Custom', contactId: 'c', conversationProviderId: 'p', html: '<p>x</p>', message: 'x' }],
    ['a 2026 type', { locationId: 'l', type: 'TIKTOK', contactId: 'c', conversationProviderId: 'p', message: 'x' }],
  ])('accepts %s', (_name, input) => {
    expect(normalizeRecord(input).ok).toBe(true);
  });

  it('fills the provider from config for types that need one, and only those', () => {
    const opts = { defaultConversationProviderId: 'prov' };
    expect(bodyOf({ ...sms, type: 'WhatsApp' }, opts).conversationProviderId).toBe('prov');
    expect(bodyOf(sms, opts).conversationProviderId).toBeUndefined();
    expect(bodyOf({ ...sms, type: 'FB', conversationProviderId: 'own' }, opts).conversationProviderId).toBe('own');
  });

  it('does not let the filled provider change the key', () => {
    const a = normalizeRecord({ ...sms, type: 'IG' }, { defaultConversationProviderId: 'p1' });
    const b = normalizeRecord({ ...sms, type: 'IG' }, { defaultConversationProviderId: 'p2' });
    expect(a.ok && b.ok && a.record.key === b.record.key).toBe(true);
  });
});

describe('normalisation', () => {
  it.each([
    ['trims strings', { ...sms, message: '  hi  ' }, { message: 'hi' }],
    ['reads type case-insensitively', { ...sms, type: 'live_chat', conversationProviderId: 'p' }, { type: 'Live_Chat' }],
    ['defaults direction to inbound', sms, { direction: 'inbound' }],
    ['keeps outbound', { ...sms, direction: 'OUTBOUND' }, { direction: 'outbound' }],
    ["reads Twilio's outbound-api as outbound", { ...sms, direction: 'outbound-api' }, { direction: 'outbound' }],
    ["reads Twilio's Outbound-Reply as outbound", { ...sms, direction: ' Outbound-Reply ' }, { direction: 'outbound' }],
    ['lower-cases and de-duplicates cc', { ...sms, emailCc: ['A@x.com', 'a@x.com ', 'b@x.com'] }, { emailCc: ['a@x.com', 'b@x.com'] }],
    ['reads ;-separated bcc', { ...sms, emailBcc: 'A@x.com;b@x.com' }, { emailBcc: ['a@x.com', 'b@x.com'] }],
    [
      'reads JSON-text attachments',
      { ...sms, attachments: '["https://x.test/a","https://x.test/b"]' },
      { attachments: ['https://x.test/a', 'https://x.test/b'] },
    ],
    ['lower-cases emailFrom', { ...sms, emailFrom: 'Jane@Example.com' }, { emailFrom: 'jane@example.com' }],
    [
      'turns phones into E.164',
      { ...sms, type: 'Call', conversationProviderId: 'p', call: { to: '(503) 708-1210', from: '503-708-1211', status: 'Voicemail' } },
      { call: { to: '+15037081210', from: '+15037081211', status: 'voicemail' } },
    ],
    [
      'reads phones in the default region',
      { ...sms, type: 'Call', conversationProviderId: 'p', call: { to: '020 7946 0958', from: '020 7946 0959' } },
      { call: { to: '+442079460958', from: '+442079460959' } },
      { defaultRegion: 'GB' as const },
    ],
    ['normalises the date to UTC', { ...sms, date: '2024-05-01T14:00:00+02:00' }, { date: '2024-05-01T12:00:00.000Z' }],
    ['reads epoch seconds', { ...sms, date: 1714564800 }, { date: '2024-05-01T12:00:00.000Z' }],
    ['takes numeric ids as text', { ...sms, altId: 12345 }, { altId: '12345' }],
  ])('%s', (_name, input, expected, options?: NormalizeOptions) => {
    expect(bodyOf(input, options)).toMatchObject(expected);
  });

  it('treats blank and null values as absent', () => {
    const body = bodyOf({ ...sms, subject: '   ', html: null, emailCc: '' });
    for (const field of ['subject', 'html', 'emailCc']) expect(body).not.toHaveProperty(field);
  });

  it('drops unknown fields when asked, and names them otherwise', () => {
    expect(issuesOf({ ...sms, colour: 'red' })).toEqual([{ path: 'colour', message: 'unknown field "colour"' }]);
    expect(issuesOf({ ...sms, Message: 'x' })[0]?.message).toContain('did you mean "message"');
    expect(bodyOf({ ...sms, colour: 'red' }, { unknownFields: 'drop' })).not.toHaveProperty('colour');
  });

  it('names at most 20 unknown fields, then counts the rest', () => {
    const many = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, i]));
    const issues = issuesOf({ ...sms, ...many });
    expect(issues).toHaveLength(21);
    expect(issues.at(-1)).toEqual({ path: '', message: 'and 480 more unknown fields' });
  });

  it('uses the default location for rows without one', () => {
    const r = normalizeRecord({ ...sms, locationId: undefined }, { defaultLocationId: 'fallback' });
    expect(r.ok && r.record.locationId).toBe('fallback');
  });
});

describe('rejections carry a path and a reason', () => {
  it.each([
    ['a non-object', 42, '', 'must be a JSON object'],
    ['an array', [sms], '', 'must be a JSON object'],
    ['a bad type', { ...sms, type: 'Pigeon' }, 'type', 'not a message type'],
    ['a bad direction', { ...sms, direction: 'sideways' }, 'direction', 'not a direction'],
    ['a bad call status', { ...sms, call: { status: 'ringing' } }, 'call.status', 'not a call status'],
    ['a bad phone', { ...sms, call: { to: 'call me' } }, 'call.to', 'not a phone number'],
    ['call not an object', { ...sms, call: 'x' }, 'call', 'must be an object'],
    ['an unknown call field', { ...sms, call: { duration: 3 } }, 'call.duration', 'unknown field'],
    ['a bad cc address', { ...sms, emailCc: ['a@x.com', 'nope'] }, 'emailCc[1]', 'not an email address'],
    ['a local file outside an import', { ...sms, attachments: ['https://x.test/a', '/b.png'] }, 'attachments[1]', 'only `ingest import` reads files'],
    ['an attachment of another scheme', { ...sms, attachments: ['ftp://x.test/a'] }, 'attachments[0]', 'not ftp'],
    ['a contact besides a contactId', { ...sms, contact: { phone: '+14155550100' } }, 'contact', 'not both'],
    [
      'a contact without phone or email',
      { type: 'SMS', message: 'hi', locationId: 'loc1', contact: { name: 'Ann' } },
      'contact.phone',
      'needs a phone or an email',
    ],
    ['a contact with a bad phone', { type: 'SMS', message: 'hi', locationId: 'loc1', contact: { phone: '12' } }, 'contact.phone', 'phone number'],
    [
      'a contact with an unknown field',
      { type: 'SMS', message: 'hi', locationId: 'loc1', contact: { phone: '+14155550100', fax: '1' } },
      'contact.fax',
      'unknown field',
    ],
    ['a wrong type of value', { ...sms, message: { text: 'x' } }, 'message', 'must be text, not an object'],
    ['a location id with a colon', { ...sms, locationId: 'a:b' }, 'locationId', 'only letters'],
    ['a date without zone', { ...sms, date: '2024-05-01T12:00:00' }, 'date', 'no time zone'],
    ['an over-long message', { ...sms, message: 'x'.repeat(LIMITS.messageChars + 1) }, 'message', `the limit is ${LIMITS.messageChars}`],
    ['an over-long html', { ...sms, html: 'x'.repeat(LIMITS.htmlChars + 1) }, 'html', `the limit is ${LIMITS.htmlChars}`],
    [
      'too many attachments',
      { ...sms, attachments: Array.from({ length: LIMITS.attachments + 1 }, (_, i) => `https://x.test/${i}`) },
      'attachments',
      `the limit is ${LIMITS.attachments}`,
    ],
    [
      'too many cc',
      { ...sms, emailCc: Array.from({ length: LIMITS.ccAddresses + 1 }, (_, i) => `u${i}@x.test`) },
      'emailCc',
      `the limit is ${LIMITS.ccAddresses}`,
    ],
    ['an over-long key', { ...sms, key: 'k'.repeat(LIMITS.sourceIdChars + 1) }, 'key', 'the limit is'],
  ])('%s', (_name, input, path, message) => {
    const issues = issuesOf(input);
    const issue = issues.find((i) => i.path === path);
    expect(issue, JSON.stringify(issues)).toBeDefined();
    expect(issue?.message).toContain(message);
  });

  it('reports every problem of a row at once', () => {
    const issues = issuesOf({ locationId: 'l', type: 'Call', call: { to: 'x', from: 'y' }, date: 'soon', extra: 1 });
    expect(issues.map((i) => i.path).sort()).toEqual(['call.from', 'call.to', 'conversationId', 'conversationProviderId', 'date', 'extra']);
  });

  it('gives the row key back with a rejection when it can', () => {
    const r = normalizeRecord({ ...sms, key: 'row-7', type: 'nope' });
    expect(!r.ok && r.key).toBe('row-7');
  });
});

describe('idempotency key of a record', () => {
  it('is the same for the same message however it was written', () => {
    const a = normalizeRecord({ ...sms, message: ' hello ', date: '2024-05-01T14:00:00+02:00' });
    const b = normalizeRecord({ ...sms, type: 'sms', date: 1714564800 });
    expect(a.ok && b.ok).toBe(true);
    if (a.ok && b.ok) expect(a.record.key).toBe(b.record.key);
  });

  it('prefers key, then altId', () => {
    const r1 = normalizeRecord({ ...sms, key: 'K1', altId: 'A1' });
    const r2 = normalizeRecord({ ...sms, altId: 'A1' });
    expect(r1.ok && r1.record.key).toBe('k-K1');
    expect(r1.ok && r1.record.sourceKey).toBe('K1');
    expect(r2.ok && r2.record.key).toBe('k-A1');
  });
});

describe('reserved field names', () => {
  it.each(['reject', 'drop'] as const)('refuses __proto__, constructor and prototype at any depth (unknownFields %s)', (unknownFields) => {
    const hostile = JSON.parse(
      '{"locationId":"l","type":"SMS","contactId":"c","message":"m","__proto__":{"type":"Email"},"constructor":1,"call":{"prototype":{"x":1}}}',
    ) as unknown;
    const issues = issuesOf(hostile, { unknownFields });
    expect(issues.map((i) => i.path).sort()).toEqual(['__proto__', 'call.prototype', 'constructor']);
    expect(issues.every((i) => i.message.includes('reserved name'))).toBe(true);
  });

  it('reads only the record’s own fields, never its prototype chain', () => {
    const inherited = Object.assign(Object.create({ contactId: 'from-prototype' }) as object, { locationId: 'l', type: 'SMS', message: 'm' });
    expect(issuesOf(inherited).map((i) => i.path)).toEqual(['conversationId']);
  });
});

describe('a contact by phone or email, and local files', () => {
  const base = { type: 'SMS', message: 'hi', locationId: 'loc1' };

  it('normalises the contact as messages are normalised: E.164 in the default region, lower-case email', () => {
    const r = normalizeRecord({ ...base, contact: { phone: '(415) 555-0100', email: ' Ann@Example.COM ', name: ' Ann ' } });
    expect(r.ok && r.record.contact).toEqual({ phone: '+14155550100', email: 'ann@example.com', name: 'Ann' });
    expect(r.ok && r.record.body.contactId).toBeUndefined();
    const gb = normalizeRecord({ ...base, contact: { phone: '020 7946 0018' } }, { defaultRegion: 'GB' });
    expect(gb.ok && gb.record.contact).toEqual({ phone: '+442079460018' });
  });

  it('a different contact is a different message when the source gave no id', () => {
    const a = normalizeRecord({ ...base, contact: { phone: '+14155550100' } });
    const b = normalizeRecord({ ...base, contact: { phone: '+14155550101' } });
    expect(a.ok && b.ok && a.record.key !== b.record.key).toBe(true);
  });

  it('keeps local files apart from URLs, as written, when the import allows them', () => {
    const r = normalizeRecord(
      { ...base, contact: { email: 'a@b.co' }, attachments: ['https://x.test/a.png', 'photos/b.png', 'file:///srv/c.pdf'] },
      { localFiles: 'allow' },
    );
    expect(r.ok && r.record.body.attachments).toEqual(['https://x.test/a.png']);
    expect(r.ok && r.record.files).toEqual(['photos/b.png', 'file:///srv/c.pdf']);
    const only = normalizeRecord({ ...base, message: undefined, contact: { email: 'a@b.co' }, attachments: 'b.png' }, { localFiles: 'allow' });
    expect(only.ok && only.record.files).toEqual(['b.png']);
  });
});
