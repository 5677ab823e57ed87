/**
 * `ingest status` and `ingest dlq` against a real worker, Redis and the stand-in.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { useRedis, useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, TOKENS, until, useHarness, type Harness } from './harness.ts';

const INGEST = resolve(import.meta.dirname, '../../producer/src/main.ts');
const tempDir = useTempDirs();
const dir = tempDir('ghl-ops-');

function ingest(h: Harness, args: string[]) {
  return spawnSync(process.execPath, [INGEST, ...args], { env: { ...process.env, ...h.env }, encoding: 'utf8' });
}

describe('operations: status and the dead-letter queue', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  async function deliveredWithFailures() {
    // The stand-in refuses messages over 10 characters with 422: the two long ones fail for good.
    const h = await harness({ fake: { maxMessageChars: 10 } });
    await h.worker();
    const file = join(dir, `${redis.prefix}.ndjson`);
    writeFileSync(
      file,
      [
        ...Array.from({ length: 6 }, (_, i) => sms(i)),
        sms(10, 'locA', { message: 'a message far too long' }),
        sms(11, 'locA', { message: 'another one too long' }),
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const r = ingest(h, ['import', file, '--json']);
    expect(r.status).toBe(0);
    await h.settled(['locA']);
    await until(async () => (await h.redis.hget(`${h.config.queuePrefix}:stats:{locA}`, 'dead')) === '2', 5_000, 'outcomes counted');
    return { h, file };
  }

  it('status shows per-location outcomes, rate and budget, and per-import progress', async () => {
    const { h } = await deliveredWithFailures();
    const r = ingest(h, ['status', '--json']);
    expect(r.status).toBe(0);
    const status = JSON.parse(r.stdout) as { locations: Record<string, unknown>[]; imports: Record<string, unknown>[] };
    expect(status.locations).toEqual([
      expect.objectContaining({
        locationId: 'locA',
        state: 'idle',
        pending: 0,
        delivered: 6,
        deadLettered: 2,
        dailyLeft: 200_000 - 8,
        budget: { max: 100, windowMs: 10_000, daily: 200_000 },
      }),
    ]);
    expect(status.imports).toEqual([expect.objectContaining({ accepted: 8, delivered: 6, deadLettered: 2, pending: 0, state: 'done' })]);
    const table = ingest(h, ['status']);
    expect(table.stdout).toMatch(/^location\s+state\s+pending/m);
    expect(table.stdout).toMatch(/^locA\s+idle\s+0/m);
  });

  it('status says why a location is paused', async () => {
    const h = await harness();
    h.fake.configure({ tokens: { [TOKENS.locA]: null } });
    await h.worker();
    await h.send([sms(1)]);
    await until(async () => h.queue('locA').isPaused(), 5_000, 'paused');
    const status = JSON.parse(ingest(h, ['status', '--location', 'locA', '--json']).stdout) as { locations: Record<string, unknown>[] };
    expect(status.locations[0]).toMatchObject({ state: 'paused', pending: 1 });
    expect(String(status.locations[0]?.reason)).toContain('401');
  });

  it('dlq list, filters and show', async () => {
    const { h } = await deliveredWithFailures();
    const list = ingest(h, ['dlq', 'list']);
    expect(list.stdout).toContain('locA.k-locA-m10');
    expect(list.stdout).toContain('2 records');
    const json = ingest(h, ['dlq', 'list', '--status', '422', '--json']).stdout.trim().split('\n');
    expect(json).toHaveLength(2);
    expect(ingest(h, ['dlq', 'list', '--status', '500']).stdout).toContain('no dead-lettered messages match');
    expect(ingest(h, ['dlq', 'list', '--class', 'nope']).status).toBe(1);
    const shown = JSON.parse(ingest(h, ['dlq', 'show', 'locA.k-locA-m10']).stdout) as Record<string, unknown>;
    expect(shown).toMatchObject({ class: 'permanent', httpStatus: 422, attempts: 1, key: 'k-locA-m10' });
    expect(ingest(h, ['dlq', 'show', 'locA.nope']).status).toBe(1);
  });

  it('export, fix, import again: the round trip delivers the fixed messages', async () => {
    const { h } = await deliveredWithFailures();
    const exported = ingest(h, ['dlq', 'export', '--location', 'locA']);
    const records = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => r.altId).sort()).toEqual(['locA-m10', 'locA-m11']);
    // Fixing means a new message: a shorter text and a new source id.
    const fixed = join(dir, `${redis.prefix}-fixed.ndjson`);
    writeFileSync(fixed, records.map((r) => JSON.stringify({ ...r, message: 'short', altId: `${String(r.altId)}-fixed` })).join('\n'));
    expect(ingest(h, ['import', fixed]).status).toBe(0);
    await h.settled(['locA']);
    expect(h.fake.stats().acceptedByLocation.locA).toBe(8);
    expect(readFileSync(fixed, 'utf8')).toContain('locA-m10-fixed');
  });

  it('redrive puts messages back with attempts reset and the same key; they cannot double post', async () => {
    const { h } = await deliveredWithFailures();
    const dry = ingest(h, ['dlq', 'redrive', '--dry-run']);
    expect(dry.stderr).toContain('2 would be redriven');
    expect((await h.deadLettered()).length).toBe(2);
    h.fake.configure({ maxMessageChars: null }); // HighLevel now takes them
    const r = ingest(h, ['dlq', 'redrive', '--location', 'locA']);
    expect(r.stderr).toContain('redriven 2');
    await h.settled(['locA']);
    expect(await h.deadLettered()).toEqual([]);
    expect(h.fake.stats()).toMatchObject({ accepted: 8, duplicateAltIds: 0 });
    const done = await h.queue('locA').getJob('k-locA-m10');
    expect(done?.attemptsMade).toBe(1);
    expect(done?.returnvalue).toMatchObject({ messageId: expect.any(String) as string });
  });

  it('purge asks unless --yes, and removes only what matches', async () => {
    const { h } = await deliveredWithFailures();
    const refused = ingest(h, ['dlq', 'purge']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('not purged: 2 records match');
    expect(ingest(h, ['dlq', 'purge', 'locA.k-locA-m10', '--yes']).stderr).toContain('purged 1');
    expect((await h.deadLettered()).map((d) => d.key)).toEqual(['k-locA-m11']);
  });
});
