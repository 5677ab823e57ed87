import { describe, expect, it } from 'vitest';
import { normalizeDate, normalizeEmail, normalizePhone, normalizeUrl, parseList } from './normalize.ts';

describe('normalizePhone', () => {
  it.each([
    ['(503) 708-1210', 'US', '+15037081210'],
    ['+1 503 708 1210', 'US', '+15037081210'],
    ['503.708.1210', 'US', '+15037081210'],
    ['020 7946 0958', 'GB', '+442079460958'],
    ['+44 20 7946 0958', 'US', '+442079460958'],
    ['06 12 34 56 78', 'FR', '+33612345678'],
  ] as const)('%s in %s -> %s', (input, region, expected) => {
    expect(normalizePhone(input, region)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['nope', 'is not a phone number'],
    ['123', 'not'],
    ['555-0100', 'not a valid phone number in region US'],
  ])('refuses %s', (input, message) => {
    const r = normalizePhone(input, 'US');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });
});

describe('normalizeDate', () => {
  it.each([
    ['2024-05-01T12:00:00Z', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T12:00:00.123456Z', '2024-05-01T12:00:00.123Z'],
    ['2024-05-01T14:00:00+02:00', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01 14:00+0200', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T07:30:00-04:30', '2024-05-01T12:00:00.000Z'],
    ['2024-12-31T23:30:00-01:00', '2025-01-01T00:30:00.000Z'],
    [1714564800, '2024-05-01T12:00:00.000Z'],
    [1714564800123, '2024-05-01T12:00:00.123Z'],
    ['1714564800', '2024-05-01T12:00:00.000Z'],
    ['1714564800123', '2024-05-01T12:00:00.123Z'],
    [1714564800.5, '2024-05-01T12:00:00.500Z'],
  ] as const)('%s -> %s', (input, expected) => {
    expect(normalizeDate(input)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['2024-05-01T12:00:00', 'no time zone'],
    ['2024-05-01', 'not an ISO-8601'],
    ['yesterday', 'not an ISO-8601'],
    ['2024-02-30T00:00:00Z', 'not a real date'],
    ['2024-13-01T00:00:00Z', 'not a real date'],
    ['2024-01-01T24:00:00Z', 'not a real date'],
    ['2024-01-01T00:00:00+19:00', 'not a real date'],
    [-1, 'after 1970'],
    [Number.NaN, 'after 1970'],
    [1e20, 'too far in the future'],
    [true, 'must be an ISO-8601'],
  ] as const)('refuses %s', (input, message) => {
    const r = normalizeDate(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });

  it('accepts 29 February in a leap year only', () => {
    expect(normalizeDate('2024-02-29T00:00:00Z').ok).toBe(true);
    expect(normalizeDate('2023-02-29T00:00:00Z').ok).toBe(false);
  });
});

describe('normalizeEmail', () => {
  it('trims and lower-cases', () => {
    expect(normalizeEmail('  Jane.Doe@Example.COM ')).toEqual({ ok: true, value: 'jane.doe@example.com' });
  });
  it.each(['jane', 'jane@', '@example.com', 'a b@example.com'])('refuses %s', (input) => {
    expect(normalizeEmail(input).ok).toBe(false);
  });
});

describe('normalizeUrl', () => {
  it.each(['https://cdn.example.com/a.png', 'http://example.com/x?sig=a%2Fb'])('keeps %s as given', (url) => {
    expect(normalizeUrl(` ${url} `)).toEqual({ ok: true, value: url });
  });
  it.each([
    ['/relative/path.png', 'not an absolute URL'],
    ['ftp://example.com/a', 'must be an http or https URL, not ftp'],
    ['file:///etc/passwd', 'must be an http or https URL'],
    ['javascript:alert(1)', 'must be an http or https URL'],
  ])('refuses %s', (url, message) => {
    const r = normalizeUrl(url);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });
});

describe('parseList', () => {
  it.each([
    [
      ['a', ' b '],
      ['a', 'b'],
    ],
    ['a;b; ;c', ['a', 'b', 'c']],
    ['["a","b"]', ['a', 'b']],
    ['', []],
    ['{"a":1}', ['{"a":1}']],
  ] as const)('%j -> %j', (input, expected) => {
    expect(parseList(input)).toEqual({ ok: true, value: expected });
  });
  it.each([[42], ['["a"'], ['[{"a":1}]'], [[1, 2]]])('refuses %j', (input) => {
    expect(parseList(input).ok).toBe(false);
  });
});
