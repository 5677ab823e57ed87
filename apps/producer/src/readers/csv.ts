/**
 * CSV with a header row of field names, read with csv-parse: quoted fields with commas and
 * newlines, a BOM, CRLF. Nested fields come as `call.to`-style columns; list fields as JSON text
 * or `;`-separated (the schema reads both). A record csv-parse cannot read (unbalanced quotes,
 * a wrong number of columns) is reported and skipped; the import goes on.
 */
import { parse } from 'csv-parse';
import { LIMITS, RESERVED_FIELD_REASON, reservedSegment } from '@ghl-ingest/schema';
import { Transform, type Readable } from 'node:stream';
import { clipRaw, type Row } from './row.ts';

/** Columns of a CSV header at most: the record has 19 fields, and nested ones add a few. */
export const MAX_COLUMNS = 1000;

export class UnreadableCsvError extends Error {
  override name = 'UnreadableCsvError';
}

export async function* readCsv(input: Readable): AsyncGenerator<Row> {
  const skipped: Row[] = [];
  const parser = parse({
    bom: true,
    columns: (header: string[]) => {
      // A header that wide is not a message file; refusing it keeps memory bounded.
      if (header.length > MAX_COLUMNS) throw new UnreadableCsvError(`the CSV header has ${header.length} columns; at most ${MAX_COLUMNS} are read`);
      const columns = header.map((h) => h.trim());
      // Refused for the whole file: every row would carry the column, and a `__proto__.x` header
      // assigned through a plain object changes Object.prototype for the rest of the process.
      for (const [i, column] of columns.entries()) {
        const segment = reservedSegment(column);
        if (segment !== undefined) {
          throw new UnreadableCsvError(
            `line 1, column ${i + 1} of the CSV header ("${column.slice(0, 80)}"): "${segment}" ${RESERVED_FIELD_REASON}; rename or remove the column`,
          );
        }
      }
      return columns;
    },
    skip_empty_lines: true,
    skip_records_with_error: true,
    relax_column_count: false,
    max_record_size: LIMITS.recordBytes,
    info: true,
    raw: true,
  });
  parser.on('skip', (error: Error & { lines?: number; raw?: string; record?: unknown }) => {
    const raw = error.raw ?? (Array.isArray(error.record) ? error.record.join(',') : '');
    skipped.push({
      // csv-parse counts lines up to where it gave up; the record began as many lines earlier as it spans.
      line: (error.lines ?? 0) - (raw.match(/\n/g)?.length ?? 0),
      raw: clipRaw(raw),
      error: `unreadable CSV: ${error.message}`,
      bytes: 0,
    });
  });
  const guard = lineLengthGuard(LIMITS.recordBytes);
  input.pipe(guard).pipe(parser);
  input.on('error', (error) => parser.destroy(error));
  guard.on('error', (error) => parser.destroy(error));
  for await (const item of parser as AsyncIterable<{ record: Record<string, string>; raw: string; info: { lines: number; bytes: number } }>) {
    while (skipped.length > 0) yield { ...(skipped.shift() as Row), bytes: item.info.bytes };
    const lines = item.raw.split('\n').length - (item.raw.endsWith('\n') ? 1 : 0);
    yield { line: item.info.lines - lines + 1, raw: clipRaw(item.raw.replace(/\r?\n$/, '')), value: unflatten(item.record), bytes: item.info.bytes };
  }
  while (skipped.length > 0) yield skipped.shift() as Row;
}

/**
 * Fails the import on a physical line longer than `max` bytes, before csv-parse sees it: a record
 * cannot be that long, and csv-parse would build a row of a million fields in memory first.
 */
function lineLengthGuard(max: number): Transform {
  let run = 0;
  let line = 1;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        run += (nl === -1 ? chunk.length : nl) - start;
        if (run > max) {
          done(new UnreadableCsvError(`line ${line} of the CSV is longer than ${max} bytes: not a file of message records`));
          return;
        }
        if (nl === -1) break;
        run = 0;
        line += 1;
        start = nl + 1;
      }
      done(null, chunk);
    },
  });
}

/**
 * `{ "call.to": "+1..." }` → `{ call: { to: "+1..." } }`; empty cells are left out. Objects are
 * built without a prototype and a parent is only ever one this function made, so no column name
 * can reach Object.prototype (the header check refuses reserved names before this runs).
 */
export function unflatten(record: Record<string, string>): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  const made = new Set<unknown>();
  for (const [column, cell] of Object.entries(record)) {
    if (cell === '') continue;
    const dot = column.indexOf('.');
    if (dot === -1) {
      out[column] = cell;
      continue;
    }
    const parent = column.slice(0, dot);
    const child = column.slice(dot + 1);
    const existing = Object.hasOwn(out, parent) ? out[parent] : undefined;
    const nested = made.has(existing) ? (existing as Record<string, unknown>) : (Object.create(null) as Record<string, unknown>);
    made.add(nested);
    nested[child] = cell;
    out[parent] = nested;
  }
  return out;
}
