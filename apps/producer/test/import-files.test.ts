/**
 * `ingest import` of records that name their contact by phone or email and carry local files:
 * the files are checked as HighLevel's upload would check them, stored in Redis by content, and
 * a row whose file is missing, of a refused type or too large is rejected with its line.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fileKey, locationQueueName, sha256Of } from '@ghl-ingest/queue';
import { jobDataSchema, toImportRecord } from '@ghl-ingest/schema';
import { useRedis, useTempDirs } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');

describe('ingest import: contacts by phone or email, local files', () => {
  const redis = useRedis();
  const tempDir = useTempDirs();

  it('stores each file once by content, keeps the contact, and rejects bad files with their lines', async () => {
    const dir = tempDir('ghl-import-files-');
    mkdirSync(join(dir, 'media'));
    const photo = Buffer.from('a picture, as far as this test cares');
    writeFileSync(join(dir, 'media', 'photo.png'), photo);
    writeFileSync(join(dir, 'media', 'tool.exe'), 'MZ');
    writeFileSync(join(dir, 'media', 'big.pdf'), '');
    truncateSync(join(dir, 'media', 'big.pdf'), 5 * 1024 * 1024 + 1);
    const row = (i: number, attachments: string[]) => ({
      locationId: 'locA',
      type: 'SMS',
      key: `m${i}`,
      contact: { phone: `(415) 555-01${10 + i}`, email: `P${i}@Example.com` },
      attachments,
    });
    const rows = [
      row(1, ['media/photo.png']),
      row(2, [pathToFileURL(join(dir, 'media', 'photo.png')).href, 'https://cdn.example.com/x.jpg']),
      row(3, ['media/missing.png']),
      row(4, ['media/tool.exe']),
      row(5, ['media/big.pdf']),
    ];
    const path = join(dir, 'messages.ndjson');
    writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = spawnSync(process.execPath, [MAIN, 'import', path, '--json'], { env: { ...process.env, ...redis.env }, encoding: 'utf8' });
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 2, rejected: 3 });
    const rejects = readFileSync(`${path}.rejects.ndjson`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; errors: { path: string; message: string }[] });
    expect(rejects.map((x) => [x.line, x.errors[0]?.path])).toEqual([
      [3, 'attachments[0]'],
      [4, 'attachments[0]'],
      [5, 'attachments[0]'],
    ]);
    expect(rejects[0]?.errors[0]?.message).toContain('ENOENT');
    expect(rejects[1]?.errors[0]?.message).toContain('HighLevel takes only');
    expect(rejects[2]?.errors[0]?.message).toContain('at most 5242880 bytes');

    const q = new Queue(locationQueueName('locA'), { connection: redis.client(), prefix: redis.prefix });
    const jobs = (await q.getJobs(['prioritized', 'wait'])).map((j) => jobDataSchema.parse(j.data)).sort((a, b) => a.key.localeCompare(b.key));
    await q.close();
    expect(jobs.map((j) => j.contact)).toEqual([
      { phone: '+14155550111', email: 'p1@example.com' },
      { phone: '+14155550112', email: 'p2@example.com' },
    ]);
    const sha256 = sha256Of(photo);
    expect(jobs.map((j) => j.files?.map((f) => [f.name, f.bytes, f.sha256]))).toEqual([
      [['photo.png', photo.length, sha256]],
      [['photo.png', photo.length, sha256]],
    ]);
    expect(jobs[1]?.body.attachments).toEqual(['https://cdn.example.com/x.jpg']);
    // Stored once, by content, with an expiry.
    expect(await redis.client().getBuffer(fileKey(redis.prefix, sha256))).toEqual(photo);
    expect(await redis.client().pttl(fileKey(redis.prefix, sha256))).toBeGreaterThan(0);
    // Exported, the record names the same file again, so a fixed export imports as it was.
    expect(toImportRecord(jobs[0] as (typeof jobs)[0])).toMatchObject({
      contact: { phone: '+14155550111' },
      attachments: [pathToFileURL(join(dir, 'media', 'photo.png')).href],
    });
  });

  it('the HTTP intake never reads a file of the server', async () => {
    const { normalizeRecord } = await import('@ghl-ingest/schema');
    const r = normalizeRecord({ locationId: 'locA', type: 'SMS', contact: { phone: '+14155550100' }, attachments: ['/etc/passwd'] });
    expect(r.ok).toBe(false);
  });
});
