/**
 * An import's id: what makes a re-run of the same file resume it. Its checkpoint lives in the
 * import record (`<prefix>:import:<id>`), which @ghl-ingest/queue's `location/import-record.ts`
 * writes, counts and reads.
 */
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

/** Same file (path, size and modification time): same id, so a re-run resumes it. Standard input: a new id. */
export async function importIdFor(file: string): Promise<string> {
  if (file === '-') return `stdin-${randomBytes(6).toString('hex')}`;
  const path = resolve(file);
  const s = await stat(path);
  return createHash('sha256').update(`${path}\n${s.size}\n${s.mtimeMs}`).digest('base64url').slice(0, 16);
}
