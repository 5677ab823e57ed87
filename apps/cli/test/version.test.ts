/**
 * `--version` prints the version of the running package's own package.json: the producer's for
 * `pnpm ingest`, ghl-ingest's for the installed command (`pnpm check:pack` runs that one from the
 * packed tarball too).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { packageVersion, run } from '@ghl-ingest/producer/cli';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const versionOf = (dir: string) => (JSON.parse(readFileSync(resolve(root, dir, 'package.json'), 'utf8')) as { version: string }).version;
const urlOf = (path: string) => pathToFileURL(resolve(root, path)).href;

describe('--version', () => {
  it.each([
    ['pnpm ingest', 'apps/producer', 'apps/producer/src/main.ts'],
    ['ghl-ingest', 'apps/cli', 'apps/cli/src/main.ts'],
  ])('%s --version prints the version in %s/package.json and exits 0', (_, dir, script) => {
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [script, flag], { cwd: root, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${versionOf(dir)}\n`);
      expect(r.status).toBe(0);
    }
  });

  it('is written to the stream run() is given, and options.version replaces the default', async () => {
    let text = '';
    const out = new Writable({
      write: (chunk: Buffer, _e, done) => {
        text += chunk.toString();
        done();
      },
    });
    expect(await run(['--version'], out)).toBe(0);
    expect(text).toBe(`${versionOf('apps/producer')}\n`);
    text = '';
    expect(await run(['--version'], out, { version: '9.8.7' })).toBe(0);
    expect(text).toBe('9.8.7\n');
  });

  it.each([
    ['a module in src/ (the repository)', 'apps/cli/src/main.ts', 'apps/cli'],
    ['a module in dist/ (an installed package)', 'apps/cli/dist/main.js', 'apps/cli'],
    ['the producer', 'apps/producer/src/cli.ts', 'apps/producer'],
  ])('packageVersion of %s reads the package.json one folder up', (_, module, dir) => {
    expect(packageVersion(urlOf(module))).toBe(versionOf(dir));
  });

  it('packageVersion throws where that package.json names no version (the private workspace root)', () => {
    expect(() => packageVersion(urlOf('scripts/check-pack.ts'))).toThrow(/names no version/);
  });
});
