/**
 * `ingest import` of files in other layouts: `--map` from the file's own names to record fields,
 * `--drop-unknown`, `--delimiter` and `--type`, end to end against Redis, with the README's
 * example on demo/sms-provider-export.csv.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { locationQueueName } from '@ghl-ingest/queue';
import type { JobData } from '@ghl-ingest/schema';
import { useRedis, useTempDirs } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');
const SMS_EXPORT = resolve(import.meta.dirname, '../../../demo/sms-provider-export.csv');
/** The README's example map for that export. */
const SMS_MAP = 'Sid=key,From=contact.phone,Body=message,DateSent=date,Direction=direction';
const tempDir = useTempDirs();
const dir = tempDir('ghl-import-map-test-');

describe('ingest import --map, --drop-unknown, --delimiter, --type', () => {
  const redis = useRedis();

  function ingest(args: string[], env: Record<string, string> = {}) {
    return spawnSync(process.execPath, [MAIN, ...args], { env: { ...process.env, ...redis.env, ...env }, encoding: 'utf8' });
  }
  function file(name: string, content: string): string {
    const path = join(dir, `${redis.prefix}-${name}`);
    writeFileSync(path, content);
    return path;
  }
  const rejectsOf = (path: string) =>
    readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { line: number; key: string | null; errors: { path: string; message: string }[] });
  async function jobs(loc: string): Promise<JobData[]> {
    const q = new Queue(locationQueueName(loc), { connection: redis.client(), prefix: redis.prefix });
    const found = await q.getJobs(['wait', 'prioritized', 'delayed']);
    await q.close();
    return found.map((j) => j.data as JobData).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  }

  it("imports the demo SMS provider export with the README's map: contact by phone, the provider's id as key, its other columns named as ignored", async () => {
    const rejects = join(dir, `${redis.prefix}-sms.rejects.ndjson`);
    const r = ingest(['import', SMS_EXPORT, '--location', 'locSms', '--type', 'SMS', '--map', SMS_MAP, '--drop-unknown', '--rejects', rejects, '--json']);
    expect(r.stderr).not.toContain('ingest:');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      format: 'csv',
      rows: 8,
      accepted: 8,
      rejected: 0,
      droppedFields: { count: 5, names: ['To', 'Status', 'NumSegments', 'Price', 'PriceUnit'] },
    });
    const queued = await jobs('locSms');
    expect(queued).toHaveLength(8);
    expect(queued[0]).toMatchObject({
      key: 'k-SM0a1f6c2e9b4d4e7f8a3b5c6d7e8f9001',
      sourceKey: 'SM0a1f6c2e9b4d4e7f8a3b5c6d7e8f9001',
      contact: { phone: '+15035550100' },
      body: { type: 'SMS', message: 'Hi, is the shop open on Saturday?', date: '2024-05-01T14:03:27.000Z', direction: 'inbound' },
    });
    expect(queued[4]?.body.message).toBe('Do you ship to Boston? My order number is "A-1042".');
    expect(queued.every((j) => j.body.contactId === undefined && j.contact?.phone !== undefined)).toBe(true);

    // The summary for people names the ignored columns too.
    const human = ingest([
      'import',
      SMS_EXPORT,
      '--location',
      'locSms',
      '--type',
      'SMS',
      '--map',
      SMS_MAP,
      '--drop-unknown',
      '--rejects',
      rejects,
      '--dry-run',
    ]);
    expect(human.status).toBe(0);
    expect(human.stderr).toContain('ignored (--drop-unknown) 5 columns that no record field takes: "To", "Status", "NumSegments", "Price", "PriceUnit"');
  });

  it('without --drop-unknown, the columns no field takes reject each row, naming them', () => {
    const rejects = join(dir, `${redis.prefix}-strict.rejects.ndjson`);
    const r = ingest(['import', SMS_EXPORT, '--location', 'locSms', '--type', 'SMS', '--map', SMS_MAP, '--rejects', rejects, '--json', '--dry-run']);
    expect(r.status).toBe(2);
    const summary = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ accepted: 0, rejected: 8 });
    expect(summary).not.toHaveProperty('droppedFields');
    const first = rejectsOf(rejects)[0];
    expect(first?.key).toBe('SM0a1f6c2e9b4d4e7f8a3b5c6d7e8f9001');
    expect(first?.errors.map((e) => e.path)).toEqual(['To', 'Status', 'NumSegments', 'Price', 'PriceUnit']);
  });

  it('a tab-separated call log mapped into call.*, typed with --type Call, its provider from GHL_CONVERSATION_PROVIDER_ID', async () => {
    const tsv = [
      'CallSid\tCustomer\tCaller\tCalled\tOutcome\tStarted\tNotes\tcall.duration',
      'CA1\tc-100\t(503) 555-0100\t503-555-0199\tcompleted\t2024-05-01T14:03:27+02:00\tasked about hours\t63',
      'CA2\tc-101\t+14155550123\t+15035550199\tno-answer\t1714572000\t\t0',
      'CA3\tc-102\t+12025550147\t+15035550199\thung up\t2024-05-01T16:00:00Z\t\t5',
    ].join('\n');
    const path = file('calls.tsv', `${tsv}\n`);
    const map = 'CallSid=key,Customer=contactId,Caller=call.from,Called=call.to,Outcome=call.status,Started=date';
    const r = ingest(
      ['import', path, '--format', 'csv', '--delimiter', '\\t', '--location', 'locCalls', '--type', 'call', '--map', map, '--drop-unknown', '--json'],
      {
        GHL_CONVERSATION_PROVIDER_ID: 'prov-calls',
      },
    );
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ rows: 3, accepted: 2, rejected: 1, droppedFields: { count: 2, names: ['Notes', 'call.duration'] } });
    const [rejected] = rejectsOf(`${path}.rejects.ndjson`);
    expect(rejected).toMatchObject({ line: 4, key: 'CA3', errors: [{ path: 'call.status' }] });
    const queued = await jobs('locCalls');
    expect(queued.map((j) => [j.key, j.body])).toEqual([
      [
        'k-CA1',
        expect.objectContaining({
          type: 'Call',
          contactId: 'c-100',
          conversationProviderId: 'prov-calls',
          date: '2024-05-01T12:03:27.000Z',
          call: { from: '+15035550100', to: '+15035550199', status: 'completed' },
        }),
      ],
      [
        'k-CA2',
        expect.objectContaining({ type: 'Call', date: '2024-05-01T14:00:00.000Z', call: { from: '+14155550123', to: '+15035550199', status: 'no-answer' } }),
      ],
    ]);
  });

  it('NDJSON: top-level names are mapped, unknown ones (nested too) dropped and named, a row whose mapped field meets its own refused', async () => {
    const rows = [
      { id: 'n1', phone: '+15035550100', text: 'one', channel: 'sms', contact: undefined },
      { id: 'n2', email: 'Ada@Example.com', text: 'two', type: 'Email', meta: { a: 1 } },
      { id: 'n3', phone: '+15035550100', text: 'three', message: 'which one?' },
      { id: 'n4', phone: '+15035550100', text: 'four', call: { to: '+15035550199', ring: 3 } },
    ];
    const path = file('a.ndjson', rows.map((x) => JSON.stringify(x)).join('\n'));
    const map = file('map.json', JSON.stringify({ id: 'key', phone: 'contact.phone', email: 'contact.email', text: 'message' }));
    const r = ingest(['import', path, '--location', 'locN', '--type', 'SMS', '--map', map, '--drop-unknown', '--json']);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 3, rejected: 1, droppedFields: { count: 3, names: ['channel', 'meta', 'call.ring'] } });
    expect(rejectsOf(`${path}.rejects.ndjson`)).toEqual([
      {
        line: 3,
        key: null,
        errors: [{ path: '', message: 'the field "text" is mapped to "message", but the record also has a field "message"' }],
        raw: JSON.stringify(rows[2]),
      },
    ]);
    const queued = await jobs('locN');
    expect(queued.map((j) => [j.key, j.contact, j.body.type, j.body.message])).toEqual([
      ['k-n1', { phone: '+15035550100' }, 'SMS', 'one'],
      ['k-n2', { email: 'ada@example.com' }, 'Email', 'two'],
      ['k-n4', { phone: '+15035550100' }, 'SMS', 'four'],
    ]);
  });

  it('a CSV column mapped beside a column already named its field fails the import naming both, enqueuing nothing', async () => {
    const path = file('both.csv', 'From,Body,message\n+15035550100,a,b\n');
    const r = ingest(['import', path, '--location', 'locBoth', '--type', 'SMS', '--map', 'From=contact.phone,Body=message']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('column 2 ("Body", mapped to "message") and column 3 ("message") are both read as "message"');
    expect(await jobs('locBoth')).toEqual([]);
  });

  let bad = 0;
  it.each([
    [['--map', 'From=contact.phone,Body'], '--map: entry 2 ("Body") has no "=": write Column=field'],
    [['--map', 'From=contact.phone,To=contact.phone'], '--map: entry 2 ("To=contact.phone"): the columns "From" and "To" are both mapped to "contact.phone"'],
    [['--map', 'Body=__proto__.x'], '--map: entry 1 ("Body=__proto__.x"): the field name "__proto__" is a reserved name'],
    [['--map', 'no-such-map.json'], '--map: cannot read the map file "no-such-map.json": no such file'],
    [['--map', 'Text=message'], '--map names "Text", which the CSV header does not have'],
    [['--delimiter', ';;'], '--delimiter: ";;" is not one character'],
    [['--delimiter', '"'], '--delimiter: the delimiter cannot be the quote character'],
    [['--type', 'Pigeon'], '--type "Pigeon" is not a message type; expected one of SMS, Email,'],
  ])('bad options %j fail with exit 1 before any row is read', async (args, message) => {
    bad += 1;
    const path = file(`bad-${bad}.csv`, 'From,Body\n+15035550100,hi\n');
    const r = ingest(['import', path, '--location', 'locBad', ...args]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(message);
    expect(await jobs('locBad')).toEqual([]);
  });

  it('--delimiter is refused for a file that is not CSV, before reading it', () => {
    const r = ingest(['import', 'history.ndjson', '--delimiter', ';']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--delimiter is for CSV files; this import reads ndjson');
    expect(r.stderr).not.toContain('no such file');
  });

  it('import --help lists the new options', () => {
    const r = ingest(['import', '--help']);
    expect(r.status).toBe(0);
    for (const option of ['--map <map>', '--drop-unknown', '--delimiter <char>', '--type <type>']) expect(r.stdout).toContain(option);
    expect(r.stdout).toContain("Names in --map match the file's exactly, after trimming");
  });
});
