/**
 * `--map` applied to an NDJSON or JSON record: its top-level field names renamed to record
 * fields, a dotted target (`contact.phone`) nesting under its first segment. (A CSV's header is
 * renamed once, in csv.ts, before its rows are read.)
 */
import type { FieldMap } from '../field-map.ts';

export type Renamed = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * The record with its mapped fields renamed; other fields stay as they are. A record that also
 * has, under its own name, a field a mapped one would fill (`Body` mapped to `message` beside a
 * `message`; `From` mapped to `contact.phone` beside a `contact`) is refused naming both: which
 * one the user meant cannot be told. Anything but an object is returned as it is.
 */
export function renameFields(value: unknown, map: FieldMap): Renamed {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: true, value };
  const record = value as Record<string, unknown>;
  const fields = Object.keys(record);
  for (const field of fields) {
    const target = map.get(field);
    if (target === undefined) continue;
    const top = target.split('.')[0] as string;
    // A field that is itself mapped moves away, so it leaves its name free.
    if (Object.hasOwn(record, top) && !map.has(top)) {
      return { ok: false, error: `the field "${field.slice(0, 80)}" is mapped to "${target}", but the record also has a field "${top}"` };
    }
  }
  // Built without a prototype, as unflatten builds CSV rows: no name can reach Object.prototype.
  const out = Object.create(null) as Record<string, unknown>;
  const made = new Set<unknown>();
  for (const field of fields) {
    const target = map.get(field) ?? field;
    const dot = map.has(field) ? target.indexOf('.') : -1;
    if (dot === -1) {
      out[target] = record[field];
      continue;
    }
    const parent = target.slice(0, dot);
    const existing = out[parent];
    const nested = made.has(existing) ? (existing as Record<string, unknown>) : (Object.create(null) as Record<string, unknown>);
    made.add(nested);
    nested[target.slice(dot + 1)] = record[field];
    out[parent] = nested;
  }
  return { ok: true, value: out };
}
