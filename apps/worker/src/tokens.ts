/**
 * Tokens per location: `GHL_TOKENS_FILE` (`{ "<locationId>": "<token>" }`) wins over `GHL_TOKEN`
 * for the locations it names. Tokens live in this process's memory only: never in Redis, job
 * data, logs, error records or metrics. `reload()` re-reads the file (SIGHUP, or when it changes).
 */
import { readTokensFile } from '@ghl-ingest/queue';

export class TokenStore {
  #file: string | undefined;
  #fallback: string | undefined;
  #byLocation = new Map<string, string>();

  /** Throws IngestError('CONFIG') when the file cannot be read or is not a map of tokens. */
  constructor(options: { file: string | undefined; token: string | undefined }) {
    this.#file = options.file;
    this.#fallback = options.token;
    this.#byLocation = this.#read();
  }

  /** The location's own token from GHL_TOKENS_FILE. */
  fromFile(locationId: string): string | undefined {
    return this.#byLocation.get(locationId);
  }

  /** GHL_TOKEN, for locations with no token of their own. */
  get fallback(): string | undefined {
    return this.#fallback;
  }

  /** Re-reads the file; returns the locations whose token changed. Keeps the old tokens if the file is bad. */
  reload(): string[] {
    const next = this.#read();
    const changed = new Set<string>();
    for (const [loc, token] of next) if (this.#byLocation.get(loc) !== token) changed.add(loc);
    for (const loc of this.#byLocation.keys()) if (!next.has(loc)) changed.add(loc);
    this.#byLocation = next;
    return [...changed];
  }

  get file(): string | undefined {
    return this.#file;
  }

  #read(): Map<string, string> {
    return this.#file === undefined ? new Map<string, string>() : readTokensFile(this.#file);
  }
}
