/**
 * A marketplace app, end to end through the public commands: OAuth tokens seeded with
 * `ingest auth import -` from standard input, GHL_CLIENT_ID / GHL_CLIENT_SECRET / GHL_TOKEN_KEY set,
 * two `pnpm worker` processes, access tokens that expire every 2 s at a stand-in that rotates
 * refresh tokens: every message delivered, no refresh token spent twice, no location paused, and
 * no token of any kind in Redis or the logs, and a 3 s refresh outage costs no message its one
 * attempt (GHL_MAX_ATTEMPTS=1). Then one location's authorisation is revoked: only it
 * pauses, with a reason that says to re-authorise, and nothing is dead-lettered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { createProducer } from '@ghl-ingest/producer';
import { loadConfig } from '@ghl-ingest/queue';
import { nodeArgsOf, until, useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');

describe('OAuth for a marketplace app', () => {
  const redis = useRedis();
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    children.length = 0;
  });

  function run(script: 'worker' | 'ingest', args: string[], env: Record<string, string>, stdin?: string) {
    const child = spawn(process.execPath, [...nodeArgsOf(script), ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.stdin.end(stdin ?? '');
    const exited = once(child, 'exit').then(([code]) => code as number | null);
    return { child, output: () => text, exited };
  }

  it('tokens refresh themselves across two workers: all delivered, no reuse, no pause, no token in Redis or logs; a revoked one pauses alone', async () => {
    const fake = await FakeHighLevel.start({ tokens: {}, oauth: { clientId: 'app-1', clientSecret: 'app-1-secret', accessTtlMs: 2_000 } });
    try {
      const own = ['oa0', 'oa1', 'oa2', 'oa3'];
      const viaAgency = ['ag0', 'ag1'];
      const grants = own.map((id) => ({ locationId: id, refreshToken: fake.oauth.authorise({ kind: 'location', id }).refreshToken }));
      fake.oauth.install('agency-1', viaAgency);
      const company = fake.oauth.authorise({ kind: 'company', id: 'agency-1' });
      const env = {
        ...redis.env,
        GHL_API_BASE_URL: fake.url,
        GHL_CLIENT_ID: 'app-1',
        GHL_CLIENT_SECRET: 'app-1-secret',
        GHL_TOKEN_KEY: randomBytes(32).toString('base64'),
        LOG_LEVEL: 'info',
        ADMIN_PORT: '0',
        HTTP_TIMEOUT_MS: '2000',
        // One attempt per message: a refresh outage must cost none.
        GHL_MAX_ATTEMPTS: '1',
      };

      // Seeded from standard input, one bad line among them (reported by number, not echoed).
      const input = [
        ...grants.map((g) => JSON.stringify(g)),
        JSON.stringify({ companyId: 'agency-1', refreshToken: company.refreshToken }),
        '{"locationId": "oa9", "refreshToken": ""}',
      ].join('\n');
      const imported = run('ingest', ['auth', 'import', '-'], env, input);
      expect(await imported.exited, imported.output()).toBe(2);
      expect(imported.output()).toContain('stored tokens for 4 location(s) and 1 agency(ies); 1 line(s) rejected');
      expect(imported.output()).toContain('line 6: refreshToken must not be empty');

      const workers = [run('worker', [], env), run('worker', [], env)];
      const locations = [...own, ...viaAgency];
      const producer = await createProducer({ config: loadConfig(env) });
      let sent = 0;
      // Messages over about 7 s: every access token expires (and is refreshed) several times.
      for (let round = 0; round < 14; round += 1) {
        if (round === 5) {
          // Once the workers deliver (a slow start must not let the outage pass unmet), HighLevel
          // cannot refresh for 3 s: tokens living 2 s expire meanwhile.
          await until(() => fake.stats().accepted >= locations.length, 30_000, 'the first round delivered');
          fake.oauthOutage(3_000);
        }
        await producer.send(locations.map((l) => ({ locationId: l, type: 'SMS', contactId: `c${round}`, message: `oauth ${round}`, altId: `${l}-${round}` })));
        sent += locations.length;
        await new Promise((r) => setTimeout(r, 500));
      }
      try {
        await until(() => fake.stats().accepted >= sent, 30_000, `${sent} deliveries`);
      } catch (error) {
        console.log(
          JSON.stringify(fake.stats()),
          workers
            .map((w) =>
              w
                .output()
                .split('\n')
                .filter((l) => !l.includes('"delivered"'))
                .slice(-15)
                .join('\n'),
            )
            .join('\n---\n'),
        );
        throw error;
      }
      const stats = fake.stats();
      expect(stats.accepted).toBe(sent);
      expect(stats.byStatus['503']).toBeGreaterThan(0); // the outage was met
      expect(stats.duplicateAltIds).toBe(0);
      expect(stats.oauth.reuse).toBe(0);
      // Tokens living 2 s over 7 s of messages: every record was refreshed (once per token across both workers).
      expect(stats.oauth.refreshes).toBeGreaterThanOrEqual(5);
      expect(stats.oauth.locationTokens).toBeGreaterThanOrEqual(2 * 2);

      const status = run('ingest', ['auth', 'status', '--json'], env);
      expect(await status.exited, status.output()).toBe(0);
      const records = JSON.parse(status.output()) as { owner: { id: string }; revoked?: string; source: string; refreshes: number }[];
      expect(records.filter((r) => r.refreshes === 0).map((r) => r.owner.id)).toEqual([]);
      expect(records.map((r) => r.owner.id).sort()).toEqual(['ag0', 'ag1', 'agency-1', ...own].sort());
      expect(records.filter((r) => r.revoked !== undefined)).toEqual([]);
      expect(records.find((r) => r.owner.id === 'ag0')?.source).toBe('from-company');

      // The app is uninstalled from oa1 at HighLevel: its next refresh is refused; only it pauses.
      fake.oauth.revoke({ kind: 'location', id: 'oa1' });
      await producer.send(locations.map((l) => ({ locationId: l, type: 'SMS', contactId: 'c-late', message: 'after the revoke', altId: `${l}-late` })));
      await producer.close();
      await until(() => fake.stats().accepted >= sent + locations.length - 1, 20_000, 'the others delivered');
      const text = run('ingest', ['status', '--json'], env);
      expect(await text.exited).toBe(0);
      const byLocation = (JSON.parse(text.output()) as { locations: { locationId: string; state: string; reason?: string }[] }).locations;
      const paused = byLocation.filter((l) => l.state === 'paused');
      expect(paused.map((l) => l.locationId)).toEqual(['oa1']);
      expect(paused[0]?.reason).toMatch(/invalid_grant.*re-authorise/);
      const dlq = run('ingest', ['dlq', 'list', '--json'], env);
      expect(await dlq.exited).toBe(0);
      expect(dlq.output().trim()).toBe('');

      for (const w of workers) w.child.kill('SIGTERM');
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

      // No token of any kind, issued or imported, in Redis (keys or values) or any process's output.
      // Every record was refreshed at least once (above): an access and a refresh token each, at least.
      const secrets = fake.oauth.issued();
      expect(secrets.length).toBeGreaterThanOrEqual(2 * records.length);
      const keys = await redis.keys(`${redis.prefix}*`);
      const values = await Promise.all(keys.map(async (k) => JSON.stringify(await dumpValue(k))));
      const everything = [...keys, ...values, imported.output(), status.output(), text.output(), ...workers.map((w) => w.output())].join('\n');
      expect(secrets.filter((s) => everything.includes(s))).toEqual([]);
      expect(workers.map((w) => w.output()).join('')).toContain('OAuth token refreshed');
    } finally {
      await fake.close();
    }

    async function dumpValue(key: string): Promise<unknown> {
      const type = await redis.admin.type(key);
      if (type === 'string') return redis.admin.get(key);
      if (type === 'hash') return redis.admin.hgetall(key);
      if (type === 'list') return redis.admin.lrange(key, 0, -1);
      if (type === 'set') return redis.admin.smembers(key);
      if (type === 'zset') return redis.admin.zrange(key, 0, -1);
      return '';
    }
  }, 90_000);
});
