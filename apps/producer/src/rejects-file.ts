/**
 * The rejects report holds raw rows, which are personal data (names, numbers, message text): it is
 * created readable by its owner only (0600), and never through a symlink, so a link planted at its
 * path cannot send the rows to a file of someone else's choosing, or make us truncate one.
 */
import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { IngestError } from '@ghl-ingest/queue';

/** Owner read and write only. */
export const REJECTS_MODE = 0o600;

const NO_FOLLOW = constants.O_WRONLY | constants.O_NOFOLLOW;

/**
 * Opens (creating it 0600 if absent) the report and cuts it to `keepBytes`: 0 for a fresh run, the
 * committed size for a resumed one. Throws IngestError('CONFIG') for a symlink or a non-file.
 */
export function prepareRejectsFile(path: string, keepBytes: number): void {
  const fd = openNoFollow(path, constants.O_CREAT);
  try {
    if (!fstatSync(fd).isFile()) throw new IngestError('CONFIG', `the rejects file ${path} is not a regular file; give another with --rejects`);
    // A report left by an older version (or made by hand) may be readable by others: no longer.
    fchmodSync(fd, REJECTS_MODE);
    ftruncateSync(fd, keepBytes);
  } finally {
    closeSync(fd);
  }
}

/** Appends to the report, refusing it if a symlink has taken its place since it was prepared. */
export async function appendRejects(path: string, text: string): Promise<void> {
  try {
    await appendFile(path, text, { flag: NO_FOLLOW | constants.O_APPEND, mode: REJECTS_MODE });
  } catch (error) {
    throw refusal(path, error);
  }
}

function openNoFollow(path: string, extra: number): number {
  try {
    return openSync(path, NO_FOLLOW | extra, REJECTS_MODE);
  } catch (error) {
    throw refusal(path, error);
  }
}

function refusal(path: string, error: unknown): unknown {
  // O_NOFOLLOW makes open fail with ELOOP when the last part of the path is a symlink.
  if ((error as NodeJS.ErrnoException).code === 'ELOOP') {
    return new IngestError(
      'CONFIG',
      `the rejects file ${path} is a symlink; it holds raw rows (personal data), so it is never written through a link: remove it or give another path with --rejects`,
    );
  }
  return error;
}
