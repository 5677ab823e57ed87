import { describe, expect, it } from 'vitest';
import { FieldMapError, loadFieldMap, MAX_MAP_ENTRIES, parseFieldMapJson, parseFieldMapPairs } from './field-map.ts';

const entries = (map: ReadonlyMap<string, string>) => [...map];

describe('--map as Column=field pairs', () => {
  it.each([
    [
      'From=contact.phone,Body=message,SentAt=date',
      [
        ['From', 'contact.phone'],
        ['Body', 'message'],
        ['SentAt', 'date'],
      ],
    ],
    [
      ' From = contact.phone , Sent At = date ',
      [
        ['From', 'contact.phone'],
        ['Sent At', 'date'],
      ],
    ],
    [
      'To=call.to,From=call.from,Outcome=call.status',
      [
        ['To', 'call.to'],
        ['From', 'call.from'],
        ['Outcome', 'call.status'],
      ],
    ],
    [
      'Sid=key,Account=locationId',
      [
        ['Sid', 'key'],
        ['Account', 'locationId'],
      ],
    ],
    ['Details=call', [['Details', 'call']]],
    [
      'message=subject,subject=message',
      [
        ['message', 'subject'],
        ['subject', 'message'],
      ],
    ],
  ])('%s', (spec, expected) => {
    expect(entries(parseFieldMapPairs(spec))).toEqual(expected);
  });

  it.each([
    ['From=contact.phone,', 'entry 2 is empty'],
    ['From=contact.phone,,Body=message', 'entry 2 is empty'],
    ['', 'entry 1 is empty'],
    ['From contact.phone', 'entry 1 ("From contact.phone") has no "=": write Column=field'],
    ['=message', 'entry 1 ("=message"): the column name is empty'],
    ['Body=', 'entry 1 ("Body="): the field name is empty'],
    ['Body=mesage', '"mesage" is no record field; record fields are type, attachments, message,'],
    ['Body=Message', '"Message" is no record field; did you mean "message"? (names match exactly)'],
    ['To=call.number', '"call.number" is no record field'],
    ['Body=message.text', '"message.text" is no record field'],
    ['Phone=contact.phone.home', '"contact.phone.home" is no record field'],
    ['Body=__proto__', 'the field name "__proto__" is a reserved name'],
    ['Body=contact.constructor', 'the field name "constructor" is a reserved name'],
    ['prototype=message', 'entry 1 ("prototype=message"): the column name "prototype" is a reserved name'],
    ['Body=message,Body=html', 'entry 2 ("Body=html"): the column "Body" is mapped twice'],
    ['From=contact.phone,To=contact.phone', 'entry 2 ("To=contact.phone"): the columns "From" and "To" are both mapped to "contact.phone"'],
    ['Who=contact,From=contact.phone', 'the column "Who" is mapped to all of "contact", and "From" to its part "contact.phone"'],
  ])('refuses %j: %s', (spec, message) => {
    const error = (() => {
      try {
        parseFieldMapPairs(spec);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(FieldMapError);
    expect((error as Error).message).toContain(message);
  });
});

describe('--map as a JSON file', () => {
  it('reads an object of field names, keeping names with commas and "=" that pairs cannot hold', () => {
    const map = parseFieldMapJson('{ "Message, text": "message", "a=b": "subject", " Sent ": "date" }', 'map.json');
    expect(entries(map)).toEqual([
      ['Message, text', 'message'],
      ['a=b', 'subject'],
      ['Sent', 'date'],
    ]);
  });

  it.each([
    ['{ "Body": ', 'the map file "m.json" is not JSON:'],
    ['["Body", "message"]', 'the map file "m.json" must hold a JSON object { "Column": "field" }, not a list'],
    ['null', 'must hold a JSON object { "Column": "field" }, not null'],
    ['"Body=message"', 'must hold a JSON object'],
    ['{}', 'the map names no column'],
    ['{ "Body": 3 }', '"Body" in the map file "m.json" maps to number; each value must be a field name'],
    ['{ "Body": null }', '"Body" in the map file "m.json" maps to null'],
    ['{ "Body": { "to": "message" } }', 'maps to object'],
    ['{ "__proto__": "message" }', 'the column name "__proto__" is a reserved name'],
    ['{ "A": "message", "B": "message" }', 'the columns "A" and "B" are both mapped to "message"'],
    ['{ "A": "message", " A ": "html" }', 'the column "A" is mapped twice'],
  ])('refuses %s', (text, message) => {
    expect(() => parseFieldMapJson(text, 'm.json')).toThrow(FieldMapError);
    expect(() => parseFieldMapJson(text, 'm.json')).toThrow(message);
  });

  it(`refuses a map of more than ${MAX_MAP_ENTRIES} entries`, () => {
    const big = Object.fromEntries(Array.from({ length: MAX_MAP_ENTRIES + 1 }, (_, i) => [`c${i}`, 'message']));
    expect(() => parseFieldMapJson(JSON.stringify(big), 'big.json')).toThrow(`the map has ${MAX_MAP_ENTRIES + 1} entries`);
  });
});

describe('loadFieldMap: pairs or a file', () => {
  const files: Record<string, string> = { 'map.json': '{ "Body": "message" }', 'odd=name.json': '{ "From": "contact.phone" }' };
  const readText = (path: string) => {
    const text = files[path];
    if (text !== undefined) return text;
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
  };

  it.each([
    ['Body=message', [['Body', 'message']]],
    ['map.json', [['Body', 'message']]],
    ['odd=name.json', [['From', 'contact.phone']]],
  ])('%s', (spec, expected) => {
    expect(entries(loadFieldMap(spec, readText))).toEqual(expected);
  });

  it.each([
    ['mpa.json', 'cannot read the map file "mpa.json": no such file'],
    ['Body', 'cannot read the map file "Body": no such file (a value without "=" is read as the path of a JSON map file)'],
  ])('a file that cannot be read: %s', (spec, message) => {
    expect(() => loadFieldMap(spec, readText)).toThrow(FieldMapError);
    expect(() => loadFieldMap(spec, readText)).toThrow(message);
  });

  it('names a folder and a denied file as such', () => {
    const failing = (code: string) => () => {
      throw Object.assign(new Error(code), { code });
    };
    expect(() => loadFieldMap('dir', failing('EISDIR'))).toThrow('cannot read the map file "dir": it is a folder');
    expect(() => loadFieldMap('secret.json', failing('EACCES'))).toThrow('cannot read the map file "secret.json": permission denied');
  });
});
