/**
 * `GHL_TOKENS_FILE` (`{ "<locationId>": "<token>" }`), read: its one owner, for the worker that
 * uses the tokens and the doctor that checks them. Every fault is described without quoting the
 * file, which holds tokens.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { IngestError } from './errors.ts';

const tokensFileSchema = z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), z.string().trim().min(1));

/** Location → token. Throws IngestError('CONFIG') when the file cannot be read or is not a map of tokens. */
export function readTokensFile(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    // A read error names the path and the reason (ENOENT, EACCES), never the content.
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new IngestError('CONFIG', `GHL_TOKENS_FILE ${file} cannot be read (${code})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the fault, which may be part of a token: the
    // report is where and what kind of fault only, and the parse error is not kept as a cause.
    const fault = jsonFault(text);
    throw new IngestError('CONFIG', `GHL_TOKENS_FILE ${file} is not valid JSON: ${fault.kind} at line ${fault.line}, column ${fault.column}`);
  }
  const parsed = tokensFileSchema.safeParse(json);
  if (!parsed.success) {
    // zod's issues name no values, but the keys of a bad entry could be a pasted token: none is shown.
    throw new IngestError('CONFIG', `GHL_TOKENS_FILE ${file} must be a JSON object of "<locationId>": "<token>"`);
  }
  return new Map(Object.entries(parsed.data));
}

export interface JsonFault {
  /** What was wrong, in words that quote nothing of the text. */
  kind: string;
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units. */
  column: number;
}

/**
 * Where `text` stops being JSON and what kind of fault it is, found without quoting any of it
 * (JSON.parse says where only sometimes, and always quotes). Assumes JSON.parse refused `text`.
 */
export function jsonFault(text: string): JsonFault {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i += 1;
  };
  const fail = (kind: string): never => {
    throw new FaultAt(i >= text.length ? 'unexpected end of the file' : kind);
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail('unexpected character');
  };
  const string = () => {
    i += 1;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) return void (i += 1);
      if (c < 0x20) fail('control character in a string');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail('bad escape in a string');
      } else i += 1;
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (m === null) fail('unexpected character');
    else i += m[0].length;
  };
  const value = (depth: number): void => {
    if (depth > 100) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i += 1;
      ws();
      if (text[i] === close) return void (i += 1);
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail('expected a quoted name');
          string();
          ws();
          if (text[i] !== ':') fail('expected ":" after a name');
          i += 1;
        }
        value(depth + 1);
        ws();
        if (text[i] === ',') i += 1;
        else if (text[i] === close) return void (i += 1);
        else fail(`expected "," or "${close}"`);
      }
    }
    if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else number();
  };
  let kind = 'unexpected character';
  try {
    value(0);
    ws();
    if (i < text.length) kind = 'text after the JSON value';
  } catch (error) {
    if (!(error instanceof FaultAt)) throw error;
    kind = error.kind;
  }
  const before = text.slice(0, i);
  const line = before.split('\n').length;
  return { kind, line, column: i - before.lastIndexOf('\n') };
}

class FaultAt extends Error {
  override name = 'FaultAt';
  readonly kind: string;
  constructor(kind: string) {
    super(kind);
    this.kind = kind;
  }
}
