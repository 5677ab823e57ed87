import { chmodSync, lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '@ghl-ingest/queue';
import { useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { runImport } from './import.ts';
import { appendRejects, prepareRejectsFile } from './rejects-file.ts';

const tempDir = useTempDirs();
const dir = tempDir('ghl-rejects-');
const config = { defaultPhoneRegion: 'US' } as Config;
const mode = (path: string) => statSync(path).mode & 0o777;

describe('the rejects file', () => {
  it('an import creates it 0600 and writes the rejected rows there', async () => {
    const file = join(dir, 'rows.ndjson');
    writeFileSync(file, '{"locationId":"l","type":"Pigeon","contactId":"c","message":"m"}\n');
    const summary = await runImport(undefined, config, { file, dryRun: true });
    expect(summary.rejected).toBe(1);
    expect(mode(summary.rejectsFile)).toBe(0o600);
    expect(readFileSync(summary.rejectsFile, 'utf8')).toContain('Pigeon');
  });

  it('an import refuses a rejects path that is a symlink, and leaves its target alone', async () => {
    const file = join(dir, 'linked.ndjson');
    writeFileSync(file, '{"type":"Pigeon"}\n');
    const target = join(dir, 'victim.txt');
    writeFileSync(target, 'keep me');
    symlinkSync(target, `${file}.rejects.ndjson`);
    await expect(runImport(undefined, config, { file, dryRun: true })).rejects.toMatchObject({
      code: 'CONFIG',
      message: expect.stringMatching(/is a symlink/) as unknown,
    });
    expect(readFileSync(target, 'utf8')).toBe('keep me');
  });

  it('takes an older report back to 0600 and to the committed size', () => {
    const path = join(dir, 'old.rejects.ndjson');
    writeFileSync(path, 'line one\nline two\n');
    chmodSync(path, 0o644);
    prepareRejectsFile(path, 9);
    expect(mode(path)).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe('line one\n');
  });

  it('refuses to append through a symlink put in its place after it was prepared', async () => {
    const path = join(dir, 'swapped.rejects.ndjson');
    const target = join(dir, 'elsewhere.txt');
    writeFileSync(target, '');
    symlinkSync(target, path);
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    await expect(appendRejects(path, 'row\n')).rejects.toMatchObject({ code: 'CONFIG' });
    expect(readFileSync(target, 'utf8')).toBe('');
  });
});
