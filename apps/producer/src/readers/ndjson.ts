/**
 * NDJSON, one record per line, read with a splitter of our own rather than `readline`: a line
 * longer than the record limit is skipped as it streams (only its start is kept for the report),
 * so a 50 MB line never sits in memory, and invalid UTF-8 is found per line, not per file.
 */
import { LIMITS } from '@ghl-ingest/schema';
import { clipRaw, RAW_KEEP, type Row } from './row.ts';

const NEWLINE = 0x0a;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export async function* readNdjson(input: AsyncIterable<Buffer | string>, startLine = 1, startBytes = 0): AsyncGenerator<Row> {
  let line = startLine;
  let bytes = startBytes;
  let parts: Buffer[] = [];
  let length = 0;
  let oversize = false;

  const finish = (): Row | undefined => {
    const buf = Buffer.concat(parts, Math.min(length, oversize ? RAW_KEEP : length));
    const rowLine = line;
    line += 1;
    parts = [];
    const wasOversize = oversize;
    const total = length;
    length = 0;
    oversize = false;
    if (wasOversize) {
      return { line: rowLine, raw: clipRaw(buf.toString('utf8')), error: `the line is ${total} bytes; the limit is ${LIMITS.recordBytes}`, bytes };
    }
    let text: string;
    try {
      text = strictUtf8.decode(buf);
    } catch {
      return { line: rowLine, raw: clipRaw(buf.toString('utf8')), error: 'the line is not valid UTF-8', bytes };
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (rowLine === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return undefined;
    try {
      return { line: rowLine, raw: clipRaw(text), value: JSON.parse(text) as unknown, bytes };
    } catch (error) {
      return { line: rowLine, raw: clipRaw(text), error: `not valid JSON: ${(error as Error).message}`, bytes };
    }
  };

  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start);
      const end = nl === -1 ? buf.length : nl;
      const piece = buf.subarray(start, end);
      length += piece.length;
      if (!oversize) parts.push(piece);
      if (length > LIMITS.recordBytes && !oversize) {
        // Keep the start for the report; drop the rest as it comes.
        oversize = true;
        parts = [Buffer.concat(parts).subarray(0, RAW_KEEP)];
      }
      if (nl === -1) {
        bytes += buf.length - start;
        break;
      }
      bytes += end - start + 1;
      const row = finish();
      if (row !== undefined) yield row;
      start = nl + 1;
    }
  }
  if (length > 0) {
    const row = finish();
    if (row !== undefined) yield row;
  }
}
