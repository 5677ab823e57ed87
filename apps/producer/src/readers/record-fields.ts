/**
 * The import record's field names, as `--map` and `--drop-unknown` need them: which names a map
 * may target, and which columns `normalizeRecord` drops as unknown. Built from the lists
 * packages/schema exports, so that a field it learns is known here too.
 */
import { BODY_FIELDS, CALL_FIELDS, CONTACT_FIELDS, RESERVED_FIELD_NAMES } from '@ghl-ingest/schema';

/** Nested record fields and their children (CSV columns `call.to`, `contact.phone`). */
export const NESTED_FIELDS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['call', new Set<string>(CALL_FIELDS)],
  ['contact', new Set<string>(CONTACT_FIELDS)],
]);

/** Every top-level field of an import record. */
export const TOP_FIELDS: ReadonlySet<string> = new Set<string>([...BODY_FIELDS, 'locationId', 'key', ...NESTED_FIELDS.keys()]);

/** `message`, `call`, `call.to`: a field of the record (a nested one at most one level down). */
export function isRecordField(path: string): boolean {
  const dot = path.indexOf('.');
  if (dot === -1) return TOP_FIELDS.has(path);
  return NESTED_FIELDS.get(path.slice(0, dot))?.has(path.slice(dot + 1)) === true;
}

/**
 * Whether `normalizeRecord` with `unknownFields: 'drop'` ignores a field read under this name (a
 * CSV column, or a path into a JSON record): an unknown top-level field, or an unknown child of a
 * nested one. A child of any other field (`message.x`) is not dropped: its row is refused, since
 * `message` is then no text. Reserved names are never dropped: they are refused.
 */
export function isDroppedField(path: string): boolean {
  if (path.split('.').some((segment) => RESERVED_FIELD_NAMES.has(segment.trim()))) return false;
  const dot = path.indexOf('.');
  const top = dot === -1 ? path : path.slice(0, dot);
  if (!TOP_FIELDS.has(top)) return true;
  if (dot === -1) return false;
  return NESTED_FIELDS.get(top)?.has(path.slice(dot + 1)) === false;
}
