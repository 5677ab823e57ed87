/**
 * `ingest doctor` as a user runs it (`node apps/producer/src/main.ts doctor`), against Redis
 * servers of its own: one set up the way the README forbids (evicting, nothing on disk), one the
 * way it asks for (AOF every second, noeviction), the latter also through ACL users that may not
 * run scripts, use pub/sub or CONFIG; and `--api` against a local HTTP server.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyTokenAnswer, OAuthStore, ProducerLocations, SETTINGS, TokenCipher } from '@ghl-ingest/queue';
import { freePort, nodeArgsOf, RedisServer } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Finding {
  check: string;
  status: 'ok' | 'warning' | 'blocker';
  detail: string;
  fix?: string;
}
interface Report {
  findings: Finding[];
  summary: { ok: number; warning: number; blocker: number; exitCode: number };
}

/** Runs `ingest doctor` in a folder of its own (no `.env`), with only these settings of ours. */
async function doctor(args: string[], settings: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const ours = new Set(SETTINGS);
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !ours.has(name)));
  const cwd = mkdtempSync(join(tmpdir(), 'ghl-doctor-cwd-'));
  try {
    const child = spawn(process.execPath, [...nodeArgsOf('ingest'), 'doctor', ...args], {
      cwd,
      env: { ...env, ...settings },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, output };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

async function doctorJson(settings: Record<string, string>, args: string[] = []): Promise<{ code: number | null; report: Report }> {
  const { code, output } = await doctor(['--json', ...args], settings);
  return { code, report: JSON.parse(output) as Report };
}

const statusOf = (report: Report, check: string) => report.findings.find((f) => f.check === check)?.status;
const prefix = () => `doctor${randomBytes(4).toString('hex')}`;

describe('a Redis that evicts and keeps nothing on disk', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start({ args: ['--maxmemory-policy', 'allkeys-lru', '--appendonly', 'no', '--save', ''] });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('names both problems with their fixes, and exits 1', async () => {
    const settings = { REDIS_URL: server.url, QUEUE_PREFIX: prefix(), GHL_TOKEN: 'pit-doctor-secret' };
    const { code, output } = await doctor([], settings);
    expect(code).toBe(1);
    expect(output).toMatch(/✗ maxmemory-policy +allkeys-lru: when full, Redis evicts keys/);
    expect(output).toMatch(/fix: run CONFIG SET maxmemory-policy noeviction and put it in redis\.conf/);
    expect(output).toMatch(/✗ persistence +nothing on disk/);
    expect(output).toMatch(/fix: run CONFIG SET appendonly yes and CONFIG SET appendfsync everysec/);
    expect(output).not.toMatch(/pit-doctor-secret/);

    const { code: jsonCode, report } = await doctorJson(settings);
    expect(jsonCode).toBe(1);
    expect(statusOf(report, 'redis.maxmemory-policy')).toBe('blocker');
    expect(statusOf(report, 'redis.persistence')).toBe('blocker');
    expect(report.summary).toMatchObject({ exitCode: 1 });
    expect(report.summary.blocker).toBeGreaterThanOrEqual(2);
  });
});

describe('a Redis set up as the README asks', () => {
  let server: RedisServer;
  let admin: Redis;
  const keySetting = randomBytes(32).toString('base64');
  beforeAll(async () => {
    server = await RedisServer.start({ appendfsync: 'everysec', args: ['--maxmemory-policy', 'noeviction', '--save', ''] });
    admin = new Redis(server.url);
    // Users a managed service or a careful operator might give us: no scripts, no pub/sub, no CONFIG.
    await admin.acl('SETUSER', 'noscripts', 'on', '>pw-noscripts', '~*', '&*', '+@all', '-@scripting');
    await admin.acl('SETUSER', 'nopubsub', 'on', '>pw-nopubsub', '~*', 'resetchannels', '+@all');
    await admin.acl('SETUSER', 'noconfig', 'on', '>pw-noconfig', '~*', '&*', '+@all', '-config');
  });
  afterAll(async () => {
    admin.disconnect();
    await server.stop();
  });

  it('exits 0 with a token for every known location', async () => {
    const p = prefix();
    await new ProducerLocations(admin, { prefix: p }).register(['locA', 'locB']);
    const { code, report } = await doctorJson({ REDIS_URL: server.url, QUEUE_PREFIX: p, GHL_TOKEN: 'pit-doctor-secret' });
    expect(report.findings.filter((f) => f.status === 'blocker')).toEqual([]);
    expect(code).toBe(0);
    expect(report.findings.find((f) => f.check === 'redis.persistence')).toMatchObject({
      status: 'ok',
      detail: expect.stringMatching(/AOF, fsync every second/) as unknown,
    });
    for (const check of [
      'redis.reachable',
      'redis.mode',
      'redis.version',
      'redis.maxmemory-policy',
      'redis.lua',
      'redis.pubsub',
      'redis.client-name',
      'clock.redis',
    ]) {
      expect(statusOf(report, check), check).toBe('ok');
    }
    expect(report.findings.find((f) => f.check === 'tokens.locations')?.detail).toMatch(/every one of 2 known locations .*2 from GHL_TOKEN/);
    expect(JSON.stringify(report)).not.toMatch(/pit-doctor-secret/);
    // Nothing of the doctor's stays in Redis.
    expect(await admin.keys(`${p}:doctor*`)).toEqual([]);
  });

  it('blocks on known locations without a token, naming them', async () => {
    const p = prefix();
    await new ProducerLocations(admin, { prefix: p }).register(['locA']);
    const { code, report } = await doctorJson({ REDIS_URL: server.url, QUEUE_PREFIX: p });
    expect(code).toBe(1);
    expect(report.findings.find((f) => f.check === 'tokens.locations')).toMatchObject({
      status: 'blocker',
      detail: expect.stringMatching(/no token on this host: locA/) as unknown,
    });
  });

  it.each([
    ['scripts', 'noscripts', 'redis.lua'],
    ['pub/sub', 'nopubsub', 'redis.pubsub'],
  ])('blocks when the ACL refuses %s, without printing the password', async (_what, user, check) => {
    const url = `redis://${user}:pw-${user}@127.0.0.1:${server.port}`;
    const { code, output } = await doctor(['--json'], { REDIS_URL: url, QUEUE_PREFIX: prefix(), GHL_TOKEN: 't' });
    const report = JSON.parse(output) as Report;
    expect(code).toBe(1);
    expect(report.findings.find((f) => f.check === check)).toMatchObject({ status: 'blocker', detail: expect.stringMatching(/NOPERM/) as unknown });
    expect(output).not.toMatch(new RegExp(`pw-${user}`));
  });

  it('with CONFIG refused (as managed services do), says what it could not read, as warnings', async () => {
    const url = `redis://noconfig:pw-noconfig@127.0.0.1:${server.port}`;
    const { code, report } = await doctorJson({ REDIS_URL: url, QUEUE_PREFIX: prefix(), GHL_TOKEN: 't' });
    expect(code).toBe(0);
    expect(report.findings.find((f) => f.check === 'redis.persistence')).toMatchObject({
      status: 'warning',
      detail: expect.stringMatching(/AOF on, but appendfsync could not be read .*check it yourself/) as unknown,
    });
    // INFO still says the policy.
    expect(statusOf(report, 'redis.maxmemory-policy')).toBe('ok');
  });

  it('judges the scopes HighLevel granted OAuth tokens, as the store recorded them', async () => {
    const p = prefix();
    const store = new OAuthStore(admin, p, TokenCipher.fromSetting(keySetting));
    await new ProducerLocations(admin, { prefix: p }).register(['locA', 'locB']);
    // locA: refreshed, and HighLevel granted the write scope only. locB: imported, scopes not known yet.
    await store.put({ kind: 'location', id: 'locA' }, { refreshToken: 'rt-secret-a' });
    await store.put({ kind: 'location', id: 'locB' }, { refreshToken: 'rt-secret-b' });
    const info = await store.info({ kind: 'location', id: 'locA' });
    const begun = await store.begin({ kind: 'location', id: 'locA' }, info?.gen ?? '0', 10_000);
    const answer = classifyTokenAnswer(
      200,
      { access_token: 'at-secret', refresh_token: 'rt-secret-2', expires_in: 86_399, scope: 'conversations/message.write' },
      Date.now(),
    );
    if (begun.kind !== 'mine' || answer.kind !== 'granted') throw new Error(`no refresh lease (${begun.kind}) or no grant (${answer.kind})`);
    expect(await store.finish({ kind: 'location', id: 'locA' }, begun.lease, answer.grant)).toBe(true);
    expect((await store.info({ kind: 'location', id: 'locA' }))?.scopes).toEqual(['conversations/message.write']);

    const { code, output } = await doctor(['--json'], {
      REDIS_URL: server.url,
      QUEUE_PREFIX: p,
      GHL_CLIENT_ID: 'app',
      GHL_CLIENT_SECRET: 'app-secret',
      GHL_TOKEN_KEY: keySetting,
    });
    const report = JSON.parse(output) as Report;
    expect(code).toBe(0);
    expect(report.findings.find((f) => f.check === 'tokens.locations')?.detail).toMatch(/every one of 2 known locations .*2 from OAuth/);
    expect(report.findings.find((f) => f.check === 'oauth.scope.conversations/message.readonly')).toMatchObject({
      status: 'warning',
      detail: expect.stringMatching(/posted twice: locA$/) as unknown,
    });
    expect(statusOf(report, 'oauth.scope.conversations/message.write')).toBeUndefined();
    expect(report.findings.find((f) => f.check === 'oauth.scopes-unknown')?.detail).toMatch(/for locB:/);
    for (const secret of ['rt-secret', 'at-secret', 'app-secret', keySetting]) expect(output).not.toContain(secret);
  });
});

describe('--api', () => {
  let server: RedisServer;
  let api: Server;
  let apiUrl: string;
  const seen: IncomingHttpHeaders[] = [];
  beforeAll(async () => {
    server = await RedisServer.start({ appendfsync: 'everysec', args: ['--maxmemory-policy', 'noeviction'] });
    api = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"statusCode":404}');
    });
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    const address = api.address();
    apiUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  afterAll(async () => {
    api.close();
    await server.stop();
  });

  it('asks HighLevel once, without a token, and judges its clock too', async () => {
    const { code, report } = await doctorJson({ REDIS_URL: server.url, QUEUE_PREFIX: prefix(), GHL_TOKEN: 'pit-doctor-secret', GHL_API_BASE_URL: apiUrl }, [
      '--api',
    ]);
    expect(code).toBe(0);
    expect(report.findings.find((f) => f.check === 'api.reachable')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/answered 404/) as unknown });
    expect(statusOf(report, 'clock.highlevel')).toBe('ok');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.authorization).toBeUndefined();
  });

  it('blocks when nothing answers there', async () => {
    const { code, report } = await doctorJson(
      { REDIS_URL: server.url, QUEUE_PREFIX: prefix(), GHL_TOKEN: 't', GHL_API_BASE_URL: `http://127.0.0.1:${await freePort()}` },
      ['--api'],
    );
    expect(code).toBe(1);
    expect(report.findings.find((f) => f.check === 'api.reachable')).toMatchObject({
      status: 'blocker',
      detail: expect.stringMatching(/ECONNREFUSED/) as unknown,
    });
  });
});

describe('no Redis', () => {
  it('is one blocker saying where it looked, and exits 1', async () => {
    const { code, report } = await doctorJson({ REDIS_URL: `redis://127.0.0.1:${await freePort()}`, QUEUE_PREFIX: prefix(), GHL_TOKEN: 't' });
    expect(code).toBe(1);
    expect(report.findings.find((f) => f.check === 'redis.reachable')).toMatchObject({ status: 'blocker', fix: expect.stringMatching(/REDIS_URL/) as unknown });
  });
});
