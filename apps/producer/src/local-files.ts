/**
 * Local attachment files of an import (`attachments` entries that are a `file:` URL or a path
 * relative to the import file's folder): each is checked the way HighLevel's upload would check
 * it (its type, its size), read once, and stored in Redis by content (`FileStore`), so that a
 * worker on any host can upload it right before the post. A file that is missing, unreadable, of
 * a type HighLevel refuses or too large rejects its row, with the line, at import time.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sha256Of, type FileStore } from '@ghl-ingest/queue';
import { uploadRefusal, type RecordIssue, type StoredFile } from '@ghl-ingest/schema';

export type FilesRead = { ok: true; files: StoredFile[] } | { ok: false; issues: RecordIssue[] };

export class LocalFiles {
  readonly #base: string;
  readonly #store: FileStore | undefined;
  readonly #maxBytes: number | undefined;

  /** `importFile`: relative paths are read from its folder (stdin: the working directory). `store` undefined: a dry run. */
  constructor(importFile: string, store: FileStore | undefined, maxBytes?: number) {
    this.#base = importFile === '-' ? process.cwd() : dirname(resolve(importFile));
    this.#store = store;
    this.#maxBytes = maxBytes;
  }

  /** Reads, checks and stores the files of one record, in order; the first attachment index is `offset`. */
  async read(refs: readonly string[], offset: number): Promise<FilesRead> {
    const files: StoredFile[] = [];
    const issues: RecordIssue[] = [];
    for (const [i, ref] of refs.entries()) {
      const path = `attachments[${offset + i}]`;
      const r = await this.#readOne(ref);
      if (typeof r === 'string') issues.push({ path, message: r });
      else files.push(r);
    }
    return issues.length > 0 ? { ok: false, issues } : { ok: true, files };
  }

  async #readOne(ref: string): Promise<StoredFile | string> {
    let file: string;
    try {
      file = /^file:/i.test(ref) ? fileURLToPath(ref) : isAbsolute(ref) ? ref : resolve(this.#base, ref);
    } catch {
      return `"${ref}" is not a file URL this machine can open`;
    }
    let size: number;
    try {
      const s = await stat(file);
      if (!s.isFile()) return `"${ref}" (${file}) is not a file`;
      size = s.size;
    } catch (error) {
      return `"${ref}" (${file}) cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
    }
    const name = basename(file);
    const refusal = uploadRefusal(name, size, this.#maxBytes);
    if (refusal !== undefined) return refusal;
    const bytes = await readFile(file).catch((error: unknown) => error as NodeJS.ErrnoException);
    if (!Buffer.isBuffer(bytes)) return `"${ref}" (${file}) cannot be read: ${bytes.code ?? String(bytes)}`;
    const sha256 = this.#store === undefined ? sha256Of(bytes) : await this.#store.put(bytes);
    return { name, bytes: bytes.length, sha256, from: pathToFileURL(file).href };
  }
}
