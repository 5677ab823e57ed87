/**
 * CSV with a header row of field names, read with csv-parse: quoted fields with commas and
 * newlines, a BOM, CRLF, any one-character delimiter. Nested fields come as `call.to`-style
 * columns; list fields as JSON text or `;`-separated (the schema reads both). `--map` renames
 * header columns before anything else reads them. A record csv-parse cannot read (unbalanced
 * quotes, a wrong number of columns) is reported and skipped; the import goes on; a header that
 * cannot be read as the map and the record say fails the import before its first row.
 */
import { parse } from 'csv-parse';
import { LIMITS, RESERVED_FIELD_REASON, reservedSegment } from '@ghl-ingest/schema';
import { Transform, type Readable } from 'node:stream';
import type { FieldMap } from '../field-map.ts';
import type { DroppedFields } from './dropped.ts';
import { isDroppedField } from './record-fields.ts';
import { clipRaw, type Row } from './row.ts';

/** Columns of a CSV header at most: the record has 19 fields, and nested ones add a few. */
export const MAX_COLUMNS = 1000;

export class UnreadableCsvError extends Error {
  override name = 'UnreadableCsvError';
}

export class BadDelimiterError extends Error {
  override name = 'BadDelimiterError';
}

export interface CsvOptions {
  /** One character. Default `,`. */
  delimiter?: string;
  /** Header columns to record fields (`--map`); the others are read under their own names. */
  map?: FieldMap;
  /** Given with `--drop-unknown`: collects the header columns that no record field takes. */
  dropped?: DroppedFields;
}

/** `--delimiter`'s value: one character; `\t` or `tab` for a tab. Not a quote or a line break. */
export function parseDelimiter(value: string): string {
  const delimiter = value === '\\t' || value.toLowerCase() === 'tab' ? '\t' : value;
  if (delimiter === '') throw new BadDelimiterError('the delimiter is empty; give one character, e.g. ";" or tab');
  if (delimiter.length !== 1) throw new BadDelimiterError(`"${value.slice(0, 20)}" is not one character (write \\t or tab for a tab)`);
  if (delimiter === '"') throw new BadDelimiterError('the delimiter cannot be the quote character "');
  if (delimiter === '\n' || delimiter === '\r') throw new BadDelimiterError('the delimiter cannot be a line break');
  return delimiter;
}

export async function* readCsv(input: Readable, options: CsvOptions = {}): AsyncGenerator<Row> {
  const skipped: Row[] = [];
  const parser = parse({
    bom: true,
    delimiter: options.delimiter ?? ',',
    columns: (header: string[]) => {
      const columns = csvColumns(header, options.map);
      if (options.dropped !== undefined) {
        for (const [i, column] of columns.entries()) if (isDroppedField(column)) options.dropped.add(column === '' ? `(column ${i + 1}, no name)` : column);
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
 * The names the rows are read under: the header trimmed, then renamed by the map. Refuses the
 * whole file (every row would carry the fault) for a reserved name (assigned through a plain
 * object, `__proto__.x` changes Object.prototype for the rest of the process), a map column the
 * header lacks, two columns read as one field (one would silently overwrite the other, whether a
 * map or the file made them so), and a column read as a whole field beside another read as its part.
 */
export function csvColumns(header: readonly string[], map: FieldMap | undefined): string[] {
  // A header that wide is not a message file; refusing it keeps memory bounded.
  if (header.length > MAX_COLUMNS) throw new UnreadableCsvError(`the CSV header has ${header.length} columns; at most ${MAX_COLUMNS} are read`);
  const own = header.map((h) => h.trim());
  for (const [i, column] of own.entries()) {
    const segment = reservedSegment(column);
    if (segment !== undefined) {
      throw new UnreadableCsvError(
        `line 1, column ${i + 1} of the CSV header ("${column.slice(0, 80)}"): "${segment}" ${RESERVED_FIELD_REASON}; rename or remove the column`,
      );
    }
  }
  if (map === undefined) return checkDistinct(own, own);
  const missing = [...map.keys()].filter((column) => !own.includes(column));
  if (missing.length > 0) {
    const quoted = (names: readonly string[]) => names.map((c) => `"${c.slice(0, 80)}"`).join(', ');
    const shown = own.length > 40 ? `${quoted(own.slice(0, 40))} and ${own.length - 40} more` : quoted(own);
    throw new UnreadableCsvError(
      `--map names ${quoted(missing.slice(0, 20))}, which the CSV header does not have (names match exactly, after trimming; the header has ${shown})`,
    );
  }
  return checkDistinct(
    own,
    own.map((column) => map.get(column) ?? column),
  );
}

function checkDistinct(own: readonly string[], columns: string[]): string[] {
  const describe = (i: number) => `column ${i + 1} ("${(own[i] ?? '').slice(0, 80)}"${own[i] === columns[i] ? '' : `, mapped to "${columns[i] ?? ''}"`})`;
  const first = new Map<string, number>();
  for (const [i, column] of columns.entries()) {
    // Unnamed columns (a trailing comma in the header) are many in some exports; they hold nothing to lose.
    if (column === '') continue;
    const seen = first.get(column);
    if (seen !== undefined) throw new UnreadableCsvError(`line 1 of the CSV header: ${describe(seen)} and ${describe(i)} are both read as "${column}"`);
    first.set(column, i);
  }
  for (const [i, column] of columns.entries()) {
    const dot = column.indexOf('.');
    const whole = dot === -1 ? undefined : first.get(column.slice(0, dot));
    if (whole !== undefined) {
      throw new UnreadableCsvError(
        `line 1 of the CSV header: ${describe(whole)} is read as all of "${column.slice(0, dot)}", and ${describe(i)} as its part "${column}"`,
      );
    }
  }
  return columns;
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
 * `{ "call.to": "+1...", "contact.phone": "+1..." }` → `{ call: { to: "+1..." }, contact: { phone: "+1..." } }`:
 * any dotted column nests one level under its first segment (what that makes of an unknown field is
 * `normalizeRecord`'s to judge); empty cells are left out. Objects are
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
