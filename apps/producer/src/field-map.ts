/**
 * `ingest import --map`: the file's own column (or top-level field) names to record fields, from
 * `Column=field` pairs or a JSON file `{ "Column": "field" }`, checked whole before any row is read.
 */
import { readFileSync } from 'node:fs';
import { RESERVED_FIELD_REASON, reservedSegment } from '@ghl-ingest/schema';
import { isRecordField, NESTED_FIELDS, TOP_FIELDS } from './readers/record-fields.ts';

/** Column name as the file has it (trimmed) → record field (`message`, `contact.phone`). */
export type FieldMap = ReadonlyMap<string, string>;

/** Entries a map may hold: as many as a CSV header has columns. */
export const MAX_MAP_ENTRIES = 1000;

export class FieldMapError extends Error {
  override name = 'FieldMapError';
}

/** Reads `--map`'s value: a path when it ends in `.json` or holds no `=`, else `Column=field` pairs. */
export function loadFieldMap(spec: string, readText: (path: string) => string = (path) => readFileSync(path, 'utf8')): FieldMap {
  if (!spec.trim().toLowerCase().endsWith('.json') && spec.includes('=')) return parseFieldMapPairs(spec);
  let text: string;
  try {
    text = readText(spec);
  } catch (error) {
    throw new FieldMapError(`cannot read the map file "${spec}": ${readFailure(error)}`, { cause: error });
  }
  return parseFieldMapJson(text, spec);
}

/** `From=contact.phone,Body=message`: names are trimmed; a name holding `,` or `=` needs a JSON file. */
export function parseFieldMapPairs(text: string): FieldMap {
  const entries = text.split(',').map((entry, i): Entry => {
    const where = `entry ${i + 1}`;
    if (entry.trim() === '') throw new FieldMapError(`${where} is empty (the pairs are separated by single commas)`);
    const eq = entry.indexOf('=');
    if (eq === -1) throw new FieldMapError(`${where} ("${clip(entry.trim())}") has no "=": write Column=field`);
    return { column: entry.slice(0, eq).trim(), field: entry.slice(eq + 1).trim(), where: `${where} ("${clip(entry.trim())}")` };
  });
  return checked(entries);
}

/** The JSON text of a map file: an object whose every value is a field name. */
export function parseFieldMapJson(text: string, source: string): FieldMap {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FieldMapError(`the map file "${source}" is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FieldMapError(`the map file "${source}" must hold a JSON object { "Column": "field" }, not ${Array.isArray(value) ? 'a list' : String(value)}`);
  }
  const entries = Object.entries(value as Record<string, unknown>).map(([column, field]): Entry => {
    const where = `"${clip(column)}" in the map file "${source}"`;
    if (typeof field !== 'string') throw new FieldMapError(`${where} maps to ${field === null ? 'null' : typeof field}; each value must be a field name`);
    return { column: column.trim(), field: field.trim(), where };
  });
  return checked(entries);
}

interface Entry {
  column: string;
  field: string;
  /** Where the entry is, for errors: `entry 2 ("Body=message")`. */
  where: string;
}

function checked(entries: Entry[]): FieldMap {
  if (entries.length === 0) throw new FieldMapError('the map names no column');
  if (entries.length > MAX_MAP_ENTRIES) throw new FieldMapError(`the map has ${entries.length} entries; at most ${MAX_MAP_ENTRIES} are read`);
  const map = new Map<string, string>();
  const byField = new Map<string, string>();
  for (const { column, field, where } of entries) {
    if (column === '') throw new FieldMapError(`${where}: the column name is empty`);
    if (field === '') throw new FieldMapError(`${where}: the field name is empty`);
    for (const [name, what] of [
      [column, 'column'],
      [field, 'field'],
    ] as const) {
      const reserved = reservedSegment(name);
      if (reserved !== undefined) throw new FieldMapError(`${where}: the ${what} name "${reserved}" ${RESERVED_FIELD_REASON}`);
    }
    if (!isRecordField(field)) throw new FieldMapError(`${where}: "${clip(field)}" is no record field${suggest(field)}`);
    if (map.has(column)) throw new FieldMapError(`${where}: the column "${clip(column)}" is mapped twice`);
    const other = byField.get(field);
    if (other !== undefined) throw new FieldMapError(`${where}: the columns "${clip(other)}" and "${clip(column)}" are both mapped to "${field}"`);
    map.set(column, field);
    byField.set(field, column);
  }
  // `A=contact` with `B=contact.phone`: one would overwrite the other.
  for (const [field, column] of byField) {
    const dot = field.indexOf('.');
    const whole = dot === -1 ? undefined : byField.get(field.slice(0, dot));
    if (whole !== undefined) {
      throw new FieldMapError(`the column "${clip(whole)}" is mapped to all of "${field.slice(0, dot)}", and "${clip(column)}" to its part "${field}"`);
    }
  }
  return map;
}

/** `Message` → `; did you mean "message"?`; the list of fields otherwise. */
function suggest(field: string): string {
  const all = [...TOP_FIELDS, ...[...NESTED_FIELDS].flatMap(([parent, children]) => [...children].map((c) => `${parent}.${c}`))];
  const near = all.find((known) => known.toLowerCase() === field.toLowerCase());
  if (near !== undefined) return `; did you mean "${near}"? (names match exactly)`;
  return `; record fields are ${all.join(', ')}`;
}

function readFailure(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') return 'no such file (a value without "=" is read as the path of a JSON map file)';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'it is a folder';
  return error instanceof Error ? error.message : String(error);
}

function clip(text: string, max = 60): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
