/**
 * An import's id: what makes a re-run of the same file resume it. Its checkpoint lives in the
 * import record (`<prefix>:import:<id>`), which @ghl-ingest/queue's `location/import-record.ts`
 * writes, counts and reads.
 */
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Same file (path, size and modification time) read the same way: same id, so a re-run resumes
 * it. `reading` names how rows are read (`--map`, `--delimiter`, `--type`, `--location`...): a
 * re-run with other options is another import, read from its first row (its messages already
 * delivered are skipped), never a resume that reads the rest of the file another way. Standard
 * input: a new id.
 */
export async function importIdFor(file: string, reading = ''): Promise<string> {
  if (file === '-') return `stdin-${randomBytes(6).toString('hex')}`;
  const path = resolve(file);
  const s = await stat(path);
  return createHash('sha256')
    .update(`${path}\n${s.size}\n${s.mtimeMs}${reading === '' ? '' : `\n${reading}`}`)
    .digest('base64url')
    .slice(0, 16);
}
