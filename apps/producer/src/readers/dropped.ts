/**
 * What `--drop-unknown` ignored: the distinct columns (CSV) or field paths (NDJSON, JSON) that no
 * record field takes, for the import summary, so a user sees what did not go in.
 */
import { isDroppedField, NESTED_FIELDS } from './record-fields.ts';

/** Names the summary lists; the count goes on past them. */
export const DROPPED_NAMES_SHOWN = 20;
/** Distinct names counted at most: a file of random field names must not grow memory. */
export const DROPPED_NAMES_COUNTED = 1000;
/** A name longer than this is cut (a summary line, not a dump of the file). */
const NAME_CHARS = 80;

export interface DroppedSummary {
  /** Distinct names dropped (counted up to 1,000; each cut at 80 characters). */
  count: number;
  /** The first 20, in the order they were met. */
  names: string[];
}

export class DroppedFields {
  readonly #names = new Set<string>();

  add(name: string): void {
    if (this.#names.size < DROPPED_NAMES_COUNTED) this.#names.add(name.length > NAME_CHARS ? `${name.slice(0, NAME_CHARS)}…` : name);
  }

  /** A JSON record as `normalizeRecord` will read it: its unknown fields, and unknown children of nested ones. */
  addRecord(value: unknown): void {
    for (const path of droppedPaths(value)) this.add(path);
  }

  summary(): DroppedSummary {
    return { count: this.#names.size, names: [...this.#names].slice(0, DROPPED_NAMES_SHOWN) };
  }
}

/** `{ extra: 1, call: { to: '+1', foo: 2 } }` → `['extra', 'call.foo']`. */
export function droppedPaths(value: unknown): string[] {
  if (!isRecordObject(value)) return [];
  const out: string[] = [];
  for (const [field, child] of Object.entries(value)) {
    if (isDroppedField(field)) out.push(field);
    else if (NESTED_FIELDS.has(field) && isRecordObject(child)) {
      for (const name of Object.keys(child)) if (isDroppedField(`${field}.${name}`)) out.push(`${field}.${name}`);
    }
  }
  return out;
}

function isRecordObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
