/**
 * Hostile files: the importer neither crashes nor grows without bound, and says what was wrong.
 * Run as `pnpm ingest` runs it (with its heap caps), peak memory read from /proc.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { followPeakRss, useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');
const tempDir = useTempDirs();
const dir = tempDir('ghl-hostile-');
const ok = JSON.stringify({ locationId: 'l', type: 'SMS', contactId: 'c', message: 'fine', altId: 'after' });

async function dryRun(
  name: string,
  content: string | Buffer,
): Promise<{ code: number | null; stderr: string; peakMb: number; summary: Record<string, unknown> | undefined }> {
  const path = join(dir, name);
  writeFileSync(path, content);
  const child = spawn(process.execPath, ['--max-old-space-size=128', '--max-semi-space-size=16', MAIN, 'import', path, '--dry-run', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const memory = followPeakRss(child.pid ?? 0, 20);
  const [code] = (await once(child, 'exit')) as [number | null];
  const peakMb = memory.stop();
  return { code, stderr, peakMb, summary: stdout === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>) };
}

describe('hostile import files', () => {
  it('random bytes: every line rejected, none crashes it', async () => {
    const r = await dryRun('random.ndjson', randomBytes(1_000_000));
    expect(r.code).toBe(2);
    expect(r.summary?.accepted).toBe(0);
    expect(Number(r.summary?.rejected)).toBeGreaterThan(1000);
    expect(r.peakMb).toBeLessThan(250);
  });

  it('a 50 MB line is rejected as it streams; the next line is read', async () => {
    const r = await dryRun('big.ndjson', `{"message":"${'x'.repeat(50_000_000)}"}\n${ok}\n`);
    expect(r.summary).toMatchObject({ rows: 2, accepted: 1, rejected: 1 });
    expect(r.peakMb).toBeLessThan(250);
  });

  it('deeply nested JSON is rejected, not a stack overflow', async () => {
    const r = await dryRun(
      'nested.ndjson',
      `${'['.repeat(500_000)}${']'.repeat(500_000)}\n${JSON.stringify({ locationId: 'l', type: 'SMS', contactId: 'c', message: { a: [[[[1]]]] } })}\n${ok}\n`,
    );
    expect(r.summary).toMatchObject({ rows: 3, accepted: 1, rejected: 2 });
  });

  it('a CSV of a million columns fails the import with a reason, in bounded memory', async () => {
    const r = await dryRun('wide.csv', `${Array.from({ length: 1_000_000 }, (_, i) => `c${i}`).join(',')}\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('longer than 1048576 bytes');
    expect(r.peakMb).toBeLessThan(250);
  });

  it('a CSV with unbalanced quotes reports the broken record and reads the rest', async () => {
    const r = await dryRun('quotes.csv', 'locationId,type,contactId,message\nl,SMS,c,fine\nl,SMS,c,"x""y\n');
    expect(r.summary).toMatchObject({ accepted: 1, rejected: 1 });
  });

  it('an empty file and a header alone import nothing and succeed', async () => {
    expect((await dryRun('empty.ndjson', '')).code).toBe(0);
    expect((await dryRun('header.csv', 'locationId,type\n')).summary).toMatchObject({ rows: 0 });
  });
});
