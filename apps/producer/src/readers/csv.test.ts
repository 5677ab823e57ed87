import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BadDelimiterError, csvColumns, parseDelimiter, readCsv, unflatten, UnreadableCsvError, type CsvOptions } from './csv.ts';
import { DroppedFields } from './dropped.ts';

async function readAll(text: string) {
  const rows = [];
  for await (const row of readCsv(Readable.from([text]))) rows.push(row);
  return rows;
}

describe('CSV headers that name a prototype', () => {
  it.each(['__proto__.zz', 'constructor.prototype.zz', 'call.__proto__', 'prototype'])(
    'refuses the file at the header %s, saying where and why',
    async (column) => {
      const error = await readAll(`locationId,${column},type\nl,polluted,SMS\n`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnreadableCsvError);
      expect((error as Error).message).toMatch(/^line 1, column 2 of the CSV header .*reserved name/);
      expect(({} as Record<string, unknown>).zz).toBeUndefined();
    },
  );

  it('builds rows that have no prototype and cannot reach Object.prototype', () => {
    const row = unflatten({ '__proto__.zz': 'polluted', 'call.to': '+1', 'call.from': '+2', type: 'SMS' });
    expect(({} as Record<string, unknown>).zz).toBeUndefined();
    expect(Object.getPrototypeOf(row)).toBeNull();
    expect(JSON.stringify(row)).toBe('{"__proto__":{"zz":"polluted"},"call":{"to":"+1","from":"+2"},"type":"SMS"}');
  });
});

const readWith = async (text: string, options: CsvOptions) => {
  const rows = [];
  for await (const row of readCsv(Readable.from([text]), options)) rows.push(row);
  return rows;
};
const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

describe('nested columns', () => {
  it('nests every dotted column under its first segment: call.*, contact.*, and unknown ones for the schema to judge', () => {
    const row = unflatten({
      'contact.phone': '+15035550100',
      'contact.firstName': 'Ada',
      'call.to': '+1',
      'meta.source': 'x',
      message: 'hi',
      'contact.email': '',
    });
    expect(plain(row)).toEqual({ contact: { phone: '+15035550100', firstName: 'Ada' }, call: { to: '+1' }, meta: { source: 'x' }, message: 'hi' });
  });

  it('reads mapped headers into nested fields', async () => {
    const map = new Map([
      ['From', 'contact.phone'],
      ['Name', 'contact.name'],
      ['Body', 'message'],
    ]);
    const [row] = await readWith('From,Name,Body,Extra\n+15035550100,Ada,hello,x\n', { map });
    expect(plain(row?.value)).toEqual({ contact: { phone: '+15035550100', name: 'Ada' }, message: 'hello', Extra: 'x' });
    expect(row?.raw).toBe('+15035550100,Ada,hello,x');
  });
});

describe('csvColumns: the names rows are read under', () => {
  const map = (...pairs: [string, string][]) => new Map(pairs);
  it.each([
    [['locationId', ' type ', 'call.to'], undefined, ['locationId', 'type', 'call.to']],
    [['From', ' Body', 'Body2'], map(['From', 'contact.phone'], ['Body', 'message']), ['contact.phone', 'message', 'Body2']],
    [['message', 'subject'], map(['message', 'subject'], ['subject', 'message']), ['subject', 'message']],
    [['a', '', ''], undefined, ['a', '', '']],
  ] as const)('%j with %j', (header, m, expected) => {
    expect(csvColumns(header, m)).toEqual(expected);
  });

  it.each([
    [
      ['From', 'Body'],
      map(['from', 'contact.phone']),
      '--map names "from", which the CSV header does not have (names match exactly, after trimming; the header has "From", "Body")',
    ],
    [['Body', 'message'], map(['Body', 'message']), 'column 1 ("Body", mapped to "message") and column 2 ("message") are both read as "message"'],
    [['message', 'x', 'message'], undefined, 'column 1 ("message") and column 3 ("message") are both read as "message"'],
    [
      ['From', 'contact'],
      map(['From', 'contact.phone']),
      'column 2 ("contact") is read as all of "contact", and column 1 ("From", mapped to "contact.phone") as its part "contact.phone"',
    ],
    [['call', 'call.to'], undefined, 'column 1 ("call") is read as all of "call", and column 2 ("call.to") as its part "call.to"'],
    [['From', '__proto__'], map(['From', 'message']), 'line 1, column 2 of the CSV header ("__proto__")'],
  ] as const)('refuses %j with %j', (header, m, message) => {
    expect(() => csvColumns(header, m)).toThrow(UnreadableCsvError);
    expect(() => csvColumns(header, m)).toThrow(message);
  });

  it('refuses a map column missing from the header before any row is read', async () => {
    const error = await readWith('From,Body\n+1,hi\n', { map: new Map([['Text', 'message']]) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreadableCsvError);
  });
});

describe('--delimiter', () => {
  it.each([
    [';', ';'],
    ['\\t', '\t'],
    ['tab', '\t'],
    ['TAB', '\t'],
    ['\t', '\t'],
    ['|', '|'],
  ])('%j is %j', (value, expected) => {
    expect(parseDelimiter(value)).toBe(expected);
  });

  it.each([
    ['', 'the delimiter is empty'],
    [';;', '";;" is not one character'],
    ['"', 'the delimiter cannot be the quote character'],
    ['\n', 'the delimiter cannot be a line break'],
    ['\r', 'the delimiter cannot be a line break'],
  ])('refuses %j', (value, message) => {
    expect(() => parseDelimiter(value)).toThrow(BadDelimiterError);
    expect(() => parseDelimiter(value)).toThrow(message);
  });

  it.each([
    [';', 'locationId;type;message\nl;SMS;"a; b"\n'],
    ['\t', 'locationId\ttype\tmessage\nl\tSMS\ta; b\n'],
  ])('reads a file separated by %j, quoting as with commas', async (delimiter, text) => {
    const rows = await readWith(text, { delimiter });
    expect(rows.map((r) => plain(r.value))).toEqual([{ locationId: 'l', type: 'SMS', message: 'a; b' }]);
  });

  it('a comma file read with another delimiter is one column per line: its header names no field', async () => {
    const dropped = new DroppedFields();
    await readWith('type,message\nSMS,hi\n', { delimiter: ';', dropped });
    expect(dropped.summary()).toEqual({ count: 1, names: ['type,message'] });
  });
});

describe('--drop-unknown over a CSV header', () => {
  it('counts each column no record field takes once, by its header name; mapped and known columns are not counted', async () => {
    const dropped = new DroppedFields();
    const text = 'Sid,From,Body,To,Status,call.foo,subject.x,,contact.phone2\nS1,+1,hi,+2,received,1,2,3,4\nS2,+1,hi,+2,received,1,2,3,4\n';
    await readWith(text, {
      map: new Map([
        ['Sid', 'key'],
        ['From', 'contact.phone'],
        ['Body', 'message'],
      ]),
      dropped,
    });
    // subject.x is not dropped: its row is refused, since subject is then no text.
    expect(dropped.summary()).toEqual({ count: 5, names: ['To', 'Status', 'call.foo', '(column 8, no name)', 'contact.phone2'] });
  });
});
