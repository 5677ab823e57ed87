/** One reason a record was refused: where (`call.status`, `attachments[2]`, or `` for the whole record) and why. */
export interface RecordIssue {
  path: string;
  message: string;
}

/** Renders a zod-style path as people write it: `emailCc[1]`, `call.to`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}
