import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { jsonFault } from '@ghl-ingest/queue';
import { TokenStore } from './tokens.ts';

const tempDir = useTempDirs();
const dir = tempDir('ghl-tokens-');
const SECRET = 'pit-1234abcd-secret-token-value';

function refusal(content: string): Error {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, content);
  try {
    new TokenStore({ file, token: undefined });
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the file to be refused');
}

describe('GHL_TOKENS_FILE errors never quote the file', () => {
  it.each([
    ['a token left unquoted', `{\n  "loc1": "ok",\n  "loc2": ${SECRET}\n}`, 'unexpected character at line 3, column 11'],
    ['a missing comma', `{ "loc1": "${SECRET}"\n  "loc2": "x" }`, 'expected "," or "}" at line 2, column 3'],
    ['a cut-off file', `{ "loc1": "${SECRET}`, 'unexpected end of the file at line 1, column'],
    ['a trailing comma', `{ "loc1": "${SECRET}", }`, 'expected a quoted name at line 1, column'],
  ])('%s: where and what, nothing of the content', (_name, content, expected) => {
    const error = refusal(content);
    expect(error.message).toContain(expected);
    expect(error.message).not.toContain('secret');
    expect(error.message).not.toContain('loc');
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain('secret');
    expect(error.cause).toBeUndefined();
  });

  it('a file of the wrong shape says the shape, not the values', () => {
    const error = refusal(JSON.stringify({ 'bad key!': SECRET }));
    expect(error.message).toContain('must be a JSON object of');
    expect(error.message).not.toContain('secret');
  });

  it('finds faults JSON.parse finds', () => {
    for (const text of ['', '[1,]', '{"a":1}x', '"\\q"', '01', '{"a" 1}', 'tru']) {
      expect(() => JSON.parse(text) as unknown).toThrow();
      expect(jsonFault(text).line).toBe(1);
    }
  });
});
