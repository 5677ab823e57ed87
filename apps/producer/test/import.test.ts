import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliveryLedger, locationQueueName } from '@ghl-ingest/queue';
import { useRedis, useTempDirs } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');
const tempDir = useTempDirs();
const dir = tempDir('ghl-import-test-');
const sms = (i: number, loc = 'locA') => ({ locationId: loc, type: 'SMS', contactId: `c${i}`, message: `m${i}`, altId: `a${i}` });
const ndjson = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

describe('ingest import', () => {
  const redis = useRedis();

  function ingest(args: string[], input?: string) {
    return spawnSync(process.execPath, [MAIN, ...args], {
      env: { ...process.env, ...redis.env },
      encoding: 'utf8',
      ...(input === undefined ? {} : { input }),
    });
  }
  function file(name: string, content: string | Buffer): string {
    const path = join(dir, `${redis.prefix}-${name}`);
    writeFileSync(path, content);
    return path;
  }
  const rejects = (path: string) =>
    readFileSync(`${path}.rejects.ndjson`, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { line: number; key: string | null; errors: { path: string; message: string }[]; raw: string });
  async function queued(loc: string): Promise<string[]> {
    const q = new Queue(locationQueueName(loc), { connection: redis.client(), prefix: redis.prefix });
    const jobs = await q.getJobs(['wait', 'prioritized', 'delayed', 'active']);
    await q.close();
    return jobs.map((j) => String(j.id)).sort();
  }

  it('NDJSON: enqueues valid rows, reports each bad one with its line, exits 2', async () => {
    const path = file('a.ndjson', ndjson([sms(1), 'not json', { ...sms(2), type: 'Pigeon' }, '', sms(3, 'locB'), { ...sms(4), extra: 1 }]));
    const r = ingest(['import', path, '--json']);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ rows: 5, accepted: 2, rejected: 3, format: 'ndjson' });
    expect(rejects(path).map((x) => [x.line, x.errors[0]?.path])).toEqual([
      [2, ''],
      [3, 'type'],
      [6, 'extra'],
    ]);
    expect(rejects(path)[1]).toMatchObject({ key: 'a2', raw: JSON.stringify({ ...sms(2), type: 'Pigeon' }) });
    expect(await queued('locA')).toEqual(['k-a1']);
    expect(await queued('locB')).toEqual(['k-a3']);
  });

  it('CSV: BOM, CRLF, quoted commas and newlines, nested call columns, both list forms, a broken record', async () => {
    const csv =
      '\uFEFFlocationId,type,contactId,message,conversationProviderId,call.to,call.from,emailCc\r\n' +
      'locA,SMS,c1,"hello, ""world""\nsecond line",,,,"[""A@x.com"",""b@x.com""]"\r\n' +
      'locA,Call,c2,,prov,(503) 708-1210,503-708-1211,\r\n' +
      'locA,SMS,c3,fine,,,,a@x.com;c@x.com\r\n' +
      'locA,SMS,c4,too,many,columns,here,x,y\r\n' +
      'locA,SMS,c5,"never closed\r\n';
    const path = file('b.csv', csv);
    const r = ingest(['import', path, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ format: 'csv', accepted: 3, rejected: 2 });
    expect(rejects(path).map((x) => x.line)).toEqual([6, 7]);
    const q = new Queue(locationQueueName('locA'), { connection: redis.client(), prefix: redis.prefix });
    const bodies = (await q.getJobs(['prioritized'])).map((j) => (j.data as { body: Record<string, unknown> }).body);
    await q.close();
    expect(bodies).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ message: 'hello, "world"\nsecond line', emailCc: ['a@x.com', 'b@x.com'] }),
        expect.objectContaining({ type: 'Call', call: { to: '+15037081210', from: '+15037081211' } }),
        expect.objectContaining({ message: 'fine', emailCc: ['a@x.com', 'c@x.com'] }),
      ]),
    );
  });

  it('JSON array: streamed, with element positions as lines', () => {
    const path = file('c.json', JSON.stringify([sms(1), { locationId: 'locA' }, sms(2)]));
    const r = ingest(['import', path, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ format: 'json', rows: 3, accepted: 2, rejected: 1 });
    expect(rejects(path).map((x) => x.line)).toEqual([2]);
  });

  it('a broken JSON array keeps the rows before the break and fails naming where', async () => {
    const path = file('d.json', `[${JSON.stringify(sms(1))}, {"locationId": `);
    const r = ingest(['import', path]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('not a valid JSON array');
    expect(await queued('locA')).toEqual(['k-a1']);
  });

  it('invalid UTF-8, an oversize line and an empty line are reported; the rest go in', () => {
    const big = JSON.stringify({ ...sms(9), message: 'x'.repeat(1_100_000) });
    const content = Buffer.concat([
      Buffer.from(`${JSON.stringify(sms(1))}\n`),
      Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]),
      Buffer.from(`${big}\n\n`),
      Buffer.from(JSON.stringify(sms(2))),
    ]);
    const path = file('e.ndjson', content);
    const r = ingest(['import', path, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 2, rejected: 2 });
    const rj = rejects(path);
    expect(rj.map((x) => x.line)).toEqual([2, 3]);
    expect(rj[0]?.errors[0]?.message).toBe('the line is not valid UTF-8');
    expect(rj[1]?.errors[0]?.message).toMatch(/^the line is \d+ bytes; the limit is 1048576$/);
    expect(rj[1]?.raw.length).toBeLessThanOrEqual(64 * 1024 + 1);
  });

  it('an empty file imports nothing and exits 0', () => {
    const path = file('empty.ndjson', '');
    const r = ingest(['import', path, '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ rows: 0, accepted: 0 });
  });

  it('re-importing enqueues nothing new, and skips what the ledger says was delivered', async () => {
    const path = file('f.ndjson', ndjson([sms(1), sms(2), sms(3)]));
    expect(ingest(['import', path]).status).toBe(0);
    const before = await queued('locA');
    await new DeliveryLedger(redis.client(), redis.prefix, 60_000).record('locA', 'k-a4', { messageId: 'old', at: 1 });
    const again = file('g.ndjson', ndjson([sms(1), sms(2), sms(3), sms(4)]));
    const r = ingest(['import', again, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 4, alreadyDelivered: 1 });
    expect(await queued('locA')).toEqual(before);
  });

  it('--dry-run validates and enqueues nothing; - reads standard input; --location fills in', async () => {
    const path = file('h.ndjson', ndjson([sms(1), { ...sms(2), type: 'x' }]));
    const dry = ingest(['import', path, '--dry-run', '--json']);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, accepted: 1, rejected: 1 });
    expect(await queued('locA')).toEqual([]);
    const { locationId: _, ...noLocation } = sms(7);
    const r = ingest(['import', '-', '--location', 'locC', '--json', '--rejects', join(dir, `${redis.prefix}-stdin.rejects`)], ndjson([noLocation]));
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 1, rejected: 0 });
    expect(await queued('locC')).toEqual(['k-a7']);
  });

  it('an interrupted import whose checkpoint predates a Redis restart starts from the top', async () => {
    const path = file('restart.ndjson', ndjson([sms(1), sms(2), sms(3)]));
    expect(ingest(['import', path]).status).toBe(0);
    // As a Redis that lost its last second would leave it: the checkpoint says line 2 of a run that
    // never finished, written by another Redis server run; the jobs after it are gone.
    const [key] = await redis.keys(`${redis.prefix}:import:*`);
    await redis.admin.hset(key as string, { state: 'running', line: 2, redisRunId: 'an-earlier-run' });
    const q = new Queue(locationQueueName('locA'), { connection: redis.client(), prefix: redis.prefix });
    await q.remove('k-a2');
    await q.remove('k-a3');
    await q.close();
    const r = ingest(['import', path, '--json']);
    expect(r.stderr).toContain('Redis restarted since the interrupted run');
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 3, resumedAfterLine: null });
    expect(await queued('locA')).toEqual(['k-a1', 'k-a2', 'k-a3']);
  });

  it('bad options fail with exit 1 and a clear message', () => {
    expect(ingest(['import', '/no/such/file.ndjson']).stderr).toContain('no such file');
    const r = ingest(['import', 'x.ndjson', '--format', 'xml']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--format must be ndjson, csv or json');
  });

  it('killed mid-file (SIGKILL) and run again: every valid row enqueued exactly once', async () => {
    const rows = Array.from({ length: 30_000 }, (_, i) => (i % 1000 === 999 ? 'broken' : sms(i, i % 3 === 0 ? 'locA' : 'locB')));
    const path = file('big.ndjson', ndjson(rows));
    const child = spawn(process.execPath, [MAIN, 'import', path], {
      env: { ...process.env, ...redis.env },
      stdio: 'ignore',
    });
    for (;;) {
      const keys = await redis.keys(`${redis.prefix}:import:*`);
      const line = keys[0] === undefined ? 0 : Number(await redis.admin.hget(keys[0], 'line'));
      if (line >= 3000) break;
      await sleep(10);
    }
    child.kill('SIGKILL');
    await once(child, 'exit');
    const r = ingest(['import', path, '--json']);
    const summary = JSON.parse(r.stdout) as { resumedAfterLine: number; accepted: number; rejected: number };
    expect(summary.resumedAfterLine).toBeGreaterThanOrEqual(3000);
    expect(summary.rejected).toBe(30);
    const all = [...(await queued('locA')), ...(await queued('locB'))];
    expect(all.length).toBe(30_000 - 30);
    expect(new Set(all).size).toBe(all.length);
    expect(rejects(path).length).toBe(30);
  }, 60_000);
});
