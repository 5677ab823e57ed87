/**
 * What a process says of itself in `ghl_ingest_build_info` (worker and intake): its package's
 * version, the Node version, and the git commit when it runs from a checkout of this repository
 * ("unknown" from an image or an installed package, which carry no `.git`).
 *
 * The checkout is looked for at one fixed place, this repository's root relative to this file
 * (`packages/queue/src` or `packages/queue/dist`), never by walking up: an installed package
 * lives inside someone else's project, whose `.git` says nothing of this code.
 */
import { readFileSync } from 'node:fs';

export interface BuildInfo {
  version: string;
  revision: string;
  node_version: string;
}

/** The labels of `ghl_ingest_build_info` for the package whose `package.json` is at `packageJson`. */
export function buildInfo(packageJson: URL): BuildInfo {
  const repository = new URL('../../../', import.meta.url);
  return {
    version: packageVersion(readOrUndefined(packageJson)),
    revision: gitRevision((path) => readOrUndefined(new URL(`.git/${path}`, repository))) ?? 'unknown',
    node_version: process.version,
  };
}

/** A package.json's `version`, "unknown" when it has none. */
export function packageVersion(text: string | undefined): string {
  try {
    const version = (JSON.parse(text ?? '{}') as { version?: unknown }).version;
    return typeof version === 'string' && version !== '' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/**
 * The commit HEAD names in a git directory, from `read(path)` (a file of it, undefined when
 * absent): a detached HEAD, or a branch as a loose ref or in `packed-refs`. Undefined otherwise.
 */
export function gitRevision(read: (path: string) => string | undefined): string | undefined {
  const head = read('HEAD')?.trim();
  if (head === undefined) return undefined;
  if (SHA.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (ref === undefined || ref.split('/').includes('..')) return undefined;
  const loose = read(ref)?.trim();
  if (loose !== undefined && SHA.test(loose)) return loose;
  for (const line of (read('packed-refs') ?? '').split('\n')) {
    const [sha, name] = line.trim().split(' ');
    if (name === ref && sha !== undefined && SHA.test(sha)) return sha;
  }
  return undefined;
}

function readOrUndefined(url: URL): string | undefined {
  try {
    return readFileSync(url, 'utf8');
  } catch {
    return undefined;
  }
}
