import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DROPPED_NAMES_COUNTED, DROPPED_NAMES_SHOWN, DroppedFields, droppedPaths } from './dropped.ts';
import { readRows, type ReadOptions } from './read-rows.ts';
import { isDroppedField, isRecordField } from './record-fields.ts';
import { renameFields } from './rename-fields.ts';

const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

async function read(text: string, options: ReadOptions) {
  const rows = [];
  for await (const row of readRows(Readable.from([text]), options)) rows.push(row);
  return rows;
}

describe('record fields', () => {
  it.each([
    ['message', true, false],
    ['locationId', true, false],
    ['key', true, false],
    ['call', true, false],
    ['call.to', true, false],
    ['contact.companyName', true, false],
    ['contact.phone2', false, true],
    ['call.foo', false, true],
    ['Body', false, true],
    ['meta.source', false, true],
    ['message.x', false, false],
    ['__proto__', false, false],
    ['call.__proto__', false, false],
  ])('%s: a record field %s, dropped %s', (path, field, dropped) => {
    expect(isRecordField(path)).toBe(field);
    expect(isDroppedField(path)).toBe(dropped);
  });
});

describe('renameFields: --map over an NDJSON or JSON record', () => {
  const map = new Map([
    ['From', 'contact.phone'],
    ['Name', 'contact.name'],
    ['Body', 'message'],
  ]);
  it.each([
    [
      { From: '+1', Name: 'Ada', Body: 'hi', type: 'SMS' },
      { contact: { phone: '+1', name: 'Ada' }, message: 'hi', type: 'SMS' },
    ],
    [
      { Body: 'hi', From: { nested: true } },
      { message: 'hi', contact: { phone: { nested: true } } },
    ],
    [{ message: 'own' }, { message: 'own' }],
    ['not an object', 'not an object'],
    [
      [1, 2],
      [1, 2],
    ],
  ])('%j', (input, expected) => {
    const r = renameFields(input, map);
    expect(r.ok && plain(r.value)).toEqual(expected);
  });

  it.each([
    [{ Body: 'hi', message: 'also' }, 'the field "Body" is mapped to "message", but the record also has a field "message"'],
    [{ From: '+1', contact: { email: 'a@b.co' } }, 'the field "From" is mapped to "contact.phone", but the record also has a field "contact"'],
  ])('refuses %j, naming both fields', (input, error) => {
    expect(renameFields(input, map)).toEqual({ ok: false, error });
  });

  it('lets a field move away from a name another one is mapped to (a swap)', () => {
    const r = renameFields(
      { message: 'a', subject: 'b' },
      new Map([
        ['message', 'subject'],
        ['subject', 'message'],
      ]),
    );
    expect(r.ok && plain(r.value)).toEqual({ subject: 'a', message: 'b' });
  });

  it('builds the record without a prototype: a __proto__ field stays a field, for the schema to refuse', () => {
    const r = renameFields(JSON.parse('{"__proto__": {"zz": 1}, "Body": "hi"}'), map);
    expect(r.ok).toBe(true);
    const value = (r as { value: Record<string, unknown> }).value;
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.keys(value)).toEqual(['__proto__', 'message']);
    expect(({} as Record<string, unknown>).zz).toBeUndefined();
  });
});

describe('dropped fields', () => {
  it.each([
    [{ extra: 1, call: { to: '+1', foo: 2 }, contact: { phone: '+1', nick: 'x' }, message: 'm' }, ['extra', 'call.foo', 'contact.nick']],
    [{ message: { x: 1 }, call: 'text' }, []],
    [{ __proto__x: 1 }, ['__proto__x']],
    [JSON.parse('{"__proto__": 1, "call": {"constructor": 1}}'), []],
    [null, []],
    ['text', []],
  ])('%j drops %j', (value, expected) => {
    expect(droppedPaths(value)).toEqual(expected);
  });

  it(`shows ${DROPPED_NAMES_SHOWN} names and counts distinct ones up to ${DROPPED_NAMES_COUNTED}`, () => {
    const dropped = new DroppedFields();
    for (let i = 0; i < 3000; i += 1) dropped.add(`f${i % 1500}`);
    dropped.add('x'.repeat(200));
    const summary = dropped.summary();
    expect(summary.count).toBe(DROPPED_NAMES_COUNTED);
    expect(summary.names).toEqual(Array.from({ length: DROPPED_NAMES_SHOWN }, (_, i) => `f${i}`));
  });

  it('cuts a long name', () => {
    const dropped = new DroppedFields();
    dropped.add('y'.repeat(200));
    expect(dropped.summary().names[0]).toBe(`${'y'.repeat(80)}…`);
  });
});

describe('readRows', () => {
  const map = new Map([
    ['From', 'contact.phone'],
    ['Body', 'message'],
  ]);
  it.each(['ndjson', 'json', 'csv'] as const)('%s: maps, defaults the type, counts what is dropped', async (format) => {
    const records = [
      { From: '+1', Body: 'a', Extra: 'x' },
      { From: '+2', Body: 'b', Extra: 'y', type: 'Email' },
      { From: '+3', Body: 'c', Extra: '', type: ' ' },
    ];
    const text =
      format === 'csv'
        ? `From,Body,Extra,type\n${records.map((r) => [r.From, r.Body, r.Extra, r.type ?? ''].join(',')).join('\n')}\n`
        : format === 'json'
          ? JSON.stringify(records)
          : records.map((r) => JSON.stringify(r)).join('\n');
    const dropped = new DroppedFields();
    const rows = await read(text, { format, map, defaultType: 'SMS', dropped });
    expect(rows.map((r) => (plain(r.value) as { type: unknown }).type)).toEqual(['SMS', 'Email', 'SMS']);
    expect(plain(rows[0]?.value)).toMatchObject({ contact: { phone: '+1' }, message: 'a', type: 'SMS' });
    expect(dropped.summary()).toEqual({ count: 1, names: ['Extra'] });
  });

  it('NDJSON: a row whose mapped field meets its own is refused with its line; unreadable rows pass as they were', async () => {
    const rows = await read(['{"Body":"a","message":"b"}', 'not json', '{"Body":"c"}'].join('\n'), { format: 'ndjson', map });
    expect(rows.map((r) => r.line)).toEqual([1, 2, 3]);
    expect(rows[0]?.error).toBe('the field "Body" is mapped to "message", but the record also has a field "message"');
    expect(rows[1]?.error).toMatch(/^not valid JSON: /);
    expect(rows[2]).toMatchObject({ value: { message: 'c' } });
    expect(rows[0]?.raw).toBe('{"Body":"a","message":"b"}');
  });

  it('without a map or a default, rows are read as they are', async () => {
    const rows = await read('{"Body":"a"}\n', { format: 'ndjson' });
    expect(rows[0]?.value).toEqual({ Body: 'a' });
  });
});
