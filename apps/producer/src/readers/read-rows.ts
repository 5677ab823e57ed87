/**
 * An import file as rows, whatever its format: the reader of that format, then `--map`'s renames,
 * `--type`'s default and `--drop-unknown`'s count, so that every row reaches validation the same way.
 */
import type { Readable } from 'node:stream';
import type { FieldMap } from '../field-map.ts';
import { readCsv } from './csv.ts';
import type { DroppedFields } from './dropped.ts';
import { readJsonArray } from './json-array.ts';
import { readNdjson } from './ndjson.ts';
import { renameFields } from './rename-fields.ts';
import type { Row } from './row.ts';

export interface ReadOptions {
  format: 'ndjson' | 'csv' | 'json';
  /** The file's own names to record fields (`--map`). */
  map?: FieldMap;
  /** CSV only: one character. Default `,`. */
  delimiter?: string;
  /** Set as `type` on rows without one (missing, null or blank): `--type`. */
  defaultType?: string;
  /** Given with `--drop-unknown`: collects what no record field takes. */
  dropped?: DroppedFields;
  /** NDJSON: the line number and byte offset `input` starts at (a resumed import). Default 1 and 0. */
  startLine?: number;
  startBytes?: number;
}

export async function* readRows(input: Readable, options: ReadOptions): AsyncGenerator<Row> {
  if (options.format === 'csv') {
    // The header is renamed and counted once, before the first row.
    const csv = readCsv(input, {
      ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
      ...(options.map === undefined ? {} : { map: options.map }),
      ...(options.dropped === undefined ? {} : { dropped: options.dropped }),
    });
    for await (const row of csv) yield withDefaultType(row, options.defaultType);
    return;
  }
  const rows = options.format === 'json' ? readJsonArray(input) : readNdjson(input, options.startLine ?? 1, options.startBytes ?? 0);
  for await (const row of rows) {
    if (row.error !== undefined) {
      yield row;
      continue;
    }
    let value = row.value;
    if (options.map !== undefined) {
      const renamed = renameFields(value, options.map);
      if (!renamed.ok) {
        yield { line: row.line, raw: row.raw, error: renamed.error, bytes: row.bytes };
        continue;
      }
      value = renamed.value;
    }
    options.dropped?.addRecord(value);
    yield withDefaultType({ ...row, value }, options.defaultType);
  }
}

function withDefaultType(row: Row, type: string | undefined): Row {
  if (type === undefined || typeof row.value !== 'object' || row.value === null || Array.isArray(row.value)) return row;
  const value = row.value as Record<string, unknown>;
  const given = Object.hasOwn(value, 'type') ? value.type : undefined;
  if (given !== undefined && given !== null && !(typeof given === 'string' && given.trim() === '')) return row;
  value.type = type;
  return row;
}
