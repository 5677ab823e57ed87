import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readCsv, unflatten, UnreadableCsvError } from './csv.ts';

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
