import { describe, expect, it } from 'vitest';
import { needsPreparing, parsePrivateHosts, uploadBatches } from './prepare.ts';

describe('upload batches: at most five files a request, names distinct within one (HighLevel answers by name)', () => {
  const f = (name: string) => ({ name });
  it.each([
    ['none', [], []],
    ['one', ['a.png'], [['a.png']]],
    ['five fit in one', ['a', 'b', 'c', 'd', 'e'], [['a', 'b', 'c', 'd', 'e']]],
    ['six take two', ['a', 'b', 'c', 'd', 'e', 'f'], [['a', 'b', 'c', 'd', 'e'], ['f']]],
    ['a repeated name goes to the next request', ['a', 'a', 'b'], [['a', 'b'], ['a']]],
    ['three of one name take three', ['a', 'a', 'a'], [['a'], ['a'], ['a']]],
  ])('%s', (_name, names, expected) => {
    expect(uploadBatches(names.map(f)).map((b) => b.map((x) => x.name))).toEqual(expected);
  });
});

describe('what needs preparing before the post', () => {
  const base = {
    v: 1 as const,
    key: 'k-1',
    locationId: 'loc1',
    source: 'backfill' as const,
    body: { type: 'SMS' as const, message: 'hi', direction: 'inbound' as const },
  };
  it.each([
    ['ids given', { ...base, body: { ...base.body, contactId: 'c1' } }, false],
    ['a contact by phone', { ...base, contact: { phone: '+14155550100' } }, true],
    ['files', { ...base, body: { ...base.body, contactId: 'c1' }, files: [{ name: 'a.png', bytes: 1, sha256: 'a'.repeat(64), from: 'file:///a.png' }] }, true],
  ])('%s', (_name, data, expected) => {
    expect(needsPreparing(data)).toBe(expected);
  });
});

describe('GHL_ATTACHMENT_HEADERS_FILE', () => {
  it('reads hosts case-insensitively, and makes their links need an upload', () => {
    const hosts = parsePrivateHosts({ 'Files.Example.com': { Authorization: 'Bearer s3cret' } }, 'file');
    expect(hosts.get('files.example.com')).toEqual({ Authorization: 'Bearer s3cret' });
    const data = {
      v: 1 as const,
      key: 'k-1',
      locationId: 'loc1',
      source: 'backfill' as const,
      body: { type: 'SMS' as const, contactId: 'c1', direction: 'inbound' as const, attachments: ['https://files.example.com/a.png'] },
    };
    expect(needsPreparing(data, hosts)).toBe(true);
    expect(needsPreparing({ ...data, body: { ...data.body, attachments: ['https://cdn.example.com/a.png'] } }, hosts)).toBe(false);
  });

  it.each([
    ['not an object', [], '(root)'],
    ['headers not an object', { h: 'x' }, 'h'],
    ['a header name with a space', { h: { 'Bad Name': 'x' } }, 'must be a header name'],
  ])('refuses %s, naming where, never quoting a value', (_name, json, where) => {
    expect(() => parsePrivateHosts(json, 'GHL_ATTACHMENT_HEADERS_FILE f')).toThrow(where);
  });
});
