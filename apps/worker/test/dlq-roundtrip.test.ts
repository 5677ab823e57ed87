/**
 * The dead-letter round trip as a user does it: messages fail for good (the stand-in refuses
 * texts over 10 characters with 422), `ingest dlq export`, fix the text (same altId, so the same
 * key), `ingest import` again, or send them again through `ingest serve`. The failed jobs still hold
 * their ids in BullMQ's failed set; each fixed message must still be delivered exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeArgsOf, useRedis, useTempDirs } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { sms, until, useHarness, type Harness } from './harness.ts';

const tempDir = useTempDirs();
const dir = tempDir('ghl-dlq-roundtrip-');
const ndjson = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const tooLong = (i: number) => sms(i, 'locA', { message: `message ${i} is far too long` });

/** `pnpm ingest ...` to its end, without blocking this process (its worker must go on delivering). */
async function ingest(h: Harness, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...nodeArgsOf('ingest'), ...args], { env: { ...process.env, ...h.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [status] = (await once(child, 'exit')) as [number | null];
  return { status, stdout, stderr };
}

/** How many times the stand-in accepted each altId. */
function acceptedPerAltId(h: Harness): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of h.fake.messages({ limit: 10_000 })) if (m.altId !== undefined) counts[m.altId] = (counts[m.altId] ?? 0) + 1;
  return counts;
}

describe('dead letters fixed and sent again', () => {
  const redis = useRedis();
  const harness = useHarness(redis);
  let serve: ChildProcess | undefined;
  afterEach(async () => {
    if (serve !== undefined && serve.exitCode === null) {
      const exited = new Promise((r) => serve?.once('exit', r));
      serve.kill('SIGTERM');
      await exited;
    }
    serve = undefined;
  });

  async function withDeadLetters(count: number): Promise<Harness> {
    const h = await harness({ fake: { maxMessageChars: 10 } });
    await h.worker();
    const file = join(dir, `${redis.prefix}.ndjson`);
    writeFileSync(file, ndjson([sms(100, 'locA', { message: 'ok' }), ...Array.from({ length: count }, (_, i) => tooLong(i))]));
    expect((await ingest(h, ['import', file, '--wait', '--json'])).status).toBe(2);
    await until(async () => (await h.deadLettered()).length === count, 10_000, 'dead letters written');
    return h;
  }

  it('export, fix, import again: every fixed message delivered once, the records dropped, a second import posts nothing', async () => {
    const h = await withDeadLetters(6);
    const exported = await ingest(h, ['dlq', 'export']);
    expect(exported.status).toBe(0);
    const records = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(6);
    const fixed = join(dir, `${redis.prefix}-fixed.ndjson`);
    writeFileSync(fixed, ndjson(records.map((r) => ({ ...r, message: 'fixed' }))));

    const imported = await ingest(h, ['import', fixed, '--wait', '--json']);
    expect(imported.status).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ accepted: 6, alreadyDelivered: 0, delivered: 6, deadLettered: 0 });
    const expected = Object.fromEntries([['locA-m100', 1], ...Array.from({ length: 6 }, (_, i) => [`locA-m${i}`, 1] as const)]);
    expect(acceptedPerAltId(h)).toEqual(expected);
    expect(await h.deadLettered()).toEqual([]);
    expect((await ingest(h, ['dlq', 'list'])).stdout).toContain('no dead-lettered messages match');

    const again = await ingest(h, ['import', fixed, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ accepted: 6, alreadyDelivered: 6 });
    await h.settled(['locA']);
    expect(acceptedPerAltId(h)).toEqual(expected);
  });

  it('a fixed message that fails again gets a new record; dlq list says what becomes of records', async () => {
    const h = await withDeadLetters(1);
    const [record] = await h.deadLettered();
    const fixed = join(dir, `${redis.prefix}-still-bad.ndjson`);
    writeFileSync(fixed, ndjson([{ ...tooLong(0), message: 'still far too long' }]));
    expect((await ingest(h, ['import', fixed, '--wait', '--json'])).status).toBe(2);
    await until(async () => (await h.deadLettered()).length === 1, 10_000, 'a new record');
    const [again] = await h.deadLettered();
    expect(again?.lastAttemptAt).toBeGreaterThan(record?.lastAttemptAt ?? Infinity);
    expect(JSON.stringify(again?.job)).toContain('still far too long');
    expect((await ingest(h, ['dlq', 'list'])).stdout).toContain('A record is dropped once its message is queued again');
  });

  it('sent again through the intake: delivered once, and a repeat is not posted again', async () => {
    const h = await withDeadLetters(3);
    serve = spawn(process.execPath, [...nodeArgsOf('ingest'), 'serve', '--port', '0'], {
      env: { ...process.env, ...h.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    serve.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await until(() => /intake listening on (\S+)/.test(output), 10_000, 'the intake listening');
    const url = /intake listening on (\S+)/.exec(output)?.[1] ?? '';
    const post = (records: unknown[]) =>
      fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
    const fixed = Array.from({ length: 3 }, (_, i) => ({ ...tooLong(i), message: 'fixed' }));

    expect((await post(fixed)).status).toBe(202);
    await until(() => Object.keys(acceptedPerAltId(h)).length === 4, 10_000, 'the fixed messages delivered');
    await h.settled(['locA']);
    expect((await post(fixed)).status).toBe(202);
    await h.settled(['locA']);
    expect(acceptedPerAltId(h)).toEqual({ 'locA-m100': 1, 'locA-m0': 1, 'locA-m1': 1, 'locA-m2': 1 });
    expect(await h.deadLettered()).toEqual([]);
  });

  it('a message by phone with a local file: dead-lettered for its number and its file, exported with both, fixed and imported again: delivered once, one contact each', async () => {
    const h = await harness({ fake: { rejectPhones: ['+14155550199'], uploadMaxBytes: 1000 } });
    await h.worker();
    const files = tempDir('ghl-dlq-files-');
    writeFileSync(join(files, 'scan.pdf'), Buffer.alloc(2000, 1));
    const file = join(files, 'export.ndjson');
    writeFileSync(
      file,
      ndjson([
        { locationId: 'locA', type: 'SMS', message: 'refused number', key: 'r1', contact: { phone: '+1 415 555 0199', firstName: 'Ada' } },
        { locationId: 'locA', type: 'SMS', message: 'file too big', key: 'r2', contact: { email: 'Grace@Example.com' }, attachments: ['scan.pdf'] },
      ]),
    );
    expect((await ingest(h, ['import', file, '--wait', '--json'])).status).toBe(2);
    const dead = await h.deadLettered();
    expect(dead.map((d) => [d.key, d.httpStatus])).toEqual(
      expect.arrayContaining([
        ['k-r1', 422],
        ['k-r2', 413],
      ]),
    );

    const exported = await ingest(h, ['dlq', 'export']);
    const records = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const byKey = new Map(records.map((r) => [r.key, r]));
    // The export is the import record: the contact as normalised, the file as a file: URL.
    expect(byKey.get('r1')).toMatchObject({ contact: { phone: '+14155550199', firstName: 'Ada' } });
    expect(byKey.get('r1')).not.toHaveProperty('contactId');
    expect(byKey.get('r2')).toMatchObject({ contact: { email: 'grace@example.com' }, attachments: [`file://${join(files, 'scan.pdf')}`] });

    // Fixed: another number for the first; HighLevel takes bigger files now for the second.
    h.fake.configure({ uploadMaxBytes: 5 * 1024 * 1024 });
    const fixed = join(files, 'fixed.ndjson');
    writeFileSync(fixed, ndjson(records.map((r) => (r.key === 'r1' ? { ...r, contact: { phone: '+14155550101', firstName: 'Ada' } } : r))));
    const imported = await ingest(h, ['import', fixed, '--wait', '--json']);
    expect(imported.status).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ accepted: 2, delivered: 2, deadLettered: 0 });
    const stats = h.fake.stats();
    // Grace's contact was made on the first try and found in the directory on the second.
    expect(stats).toMatchObject({ accepted: 2, contactsCreated: 2, upserts: 2, uploads: 1, attachmentsPosted: 1, duplicateBodies: 0 });
    expect(
      h.fake
        .contacts('locA')
        .map((c) => c.phone ?? c.email)
        .sort(),
    ).toEqual(['+14155550101', 'grace@example.com']);
    expect(await h.deadLettered()).toEqual([]);
  }, 60_000);
});
