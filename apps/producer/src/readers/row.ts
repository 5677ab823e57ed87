/** One row as read from an import file, before validation. */
export interface Row {
  /** Line of the file where the row starts (for a JSON array: the element's position, from 1). */
  line: number;
  /** The row as read, for the rejects report (cut at 64 KB). */
  raw: string;
  /** The parsed value, when the row could be read at all. */
  value?: unknown;
  /** Why the row could not be read (bad JSON, invalid UTF-8, oversize, bad CSV quoting). */
  error?: string;
  /** Bytes of the file read up to the end of this row (for progress and resuming). */
  bytes: number;
}

export const RAW_KEEP = 64 * 1024;

export function clipRaw(raw: string): string {
  return raw.length <= RAW_KEEP ? raw : `${raw.slice(0, RAW_KEEP)}…`;
}
