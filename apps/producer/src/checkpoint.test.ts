import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { importIdFor } from './checkpoint.ts';
import { readingFingerprint, type ImportOptions } from './import.ts';

describe('an import id: the same file read the same way resumes; read another way, it is another import', () => {
  const tempDir = useTempDirs();
  const dir = tempDir('ghl-import-id-');
  const file = join(dir, 'export.csv');
  writeFileSync(file, 'Sid,From,Body\n');
  const idOf = (options: Partial<ImportOptions>) => importIdFor(file, readingFingerprint({ file, ...options }, 'csv'));

  it('a plain import is named by its file alone', async () => {
    expect(await idOf({})).toBe(await importIdFor(file));
  });

  it.each<[string, Partial<ImportOptions>, Partial<ImportOptions>]>([
    ['the same map', { map: new Map([['From', 'contact.phone']]) }, { map: new Map([['From', 'contact.phone']]) }],
    ['the same location and type', { location: 'L1', defaultType: 'SMS' }, { location: 'L1', defaultType: 'SMS' }],
  ])('%s: the same id', async (_what, a, b) => {
    expect(await idOf(a)).toBe(await idOf(b));
  });

  it.each<[string, Partial<ImportOptions>, Partial<ImportOptions>]>([
    ['a map, then none', { map: new Map([['From', 'contact.phone']]) }, {}],
    ['another map', { map: new Map([['From', 'contact.phone']]) }, { map: new Map([['To', 'contact.phone']]) }],
    ['another delimiter', { delimiter: ';' }, { delimiter: '\t' }],
    ['another location', { location: 'L1' }, { location: 'L2' }],
    ['--drop-unknown, then not', { dropUnknown: true }, {}],
    ['another type', { defaultType: 'SMS' }, { defaultType: 'Email' }],
  ])('%s: another id', async (_what, a, b) => {
    expect(await idOf(a)).not.toBe(await idOf(b));
  });
});
