/**
 * `rediss://` with a username and password: a Redis of the test's own with TLS only (no plain
 * port) and an ACL user limited to the queue prefix's keys, a certificate from a CA generated
 * here (trusted through NODE_EXTRA_CA_CERTS, as a private CA would be). The importer and a worker
 * run as processes on it and deliver; a wrong password and an untrusted certificate fail clearly.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { freePort } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const WORKER = resolve(import.meta.dirname, '../src/main.ts');
const INGEST = resolve(import.meta.dirname, '../../producer/src/main.ts');
const PASSWORD = 'tls-acl-password-6b0e2f';
const PREFIX = 'tls-test';

function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version']).status === 0;
}

describe.skipIf(!hasOpenssl())('Redis over TLS with an ACL user', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ghl-tls-'));
  const file = (name: string) => join(dir, name);
  let redis: ChildProcess | undefined;
  let port = 0;

  beforeAll(async () => {
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=ghl-ingest test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'redis.key', '-out', 'redis.csr');
    writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    ssl('x509', '-req', '-in', 'redis.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'redis.pem');
    port = await freePort();
    redis = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--tls-cert-file',
        file('redis.pem'),
        '--tls-key-file',
        file('redis.key'),
        '--tls-ca-cert-file',
        file('ca.pem'),
        '--tls-auth-clients',
        'no',
        // The default user is off; ours may touch only keys and channels under the queue prefix.
        '--user',
        'default',
        'off',
        '--user',
        'ingest',
        'on',
        `>${PASSWORD}`,
        `~${PREFIX}*`,
        `&${PREFIX}*`,
        '+@all',
      ],
      { stdio: 'ignore' },
    );
    const ca = readFileSync(file('ca.pem'));
    for (let i = 0; ; i += 1) {
      const probe = new Redis({
        port,
        host: '127.0.0.1',
        username: 'ingest',
        password: PASSWORD,
        tls: { ca },
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
      });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        break;
      } catch (error) {
        probe.disconnect();
        if (i > 100) throw error;
        await sleep(50);
      }
    }
  }, 60_000);

  afterAll(async () => {
    if (redis !== undefined && redis.exitCode === null) {
      const exited = once(redis, 'exit');
      redis.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const url = (password = PASSWORD) => `rediss://ingest:${password}@127.0.0.1:${port}`;
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    QUEUE_PREFIX: PREFIX,
    REDIS_URL: url(),
    NODE_EXTRA_CA_CERTS: file('ca.pem'),
    LOG_LEVEL: 'warn',
    ...extra,
  });

  it('imports and delivers through rediss:// as an ACL user confined to the prefix', async () => {
    const fake = await FakeHighLevel.start({ tokens: { 'tls-secret-token': 'locT' } });
    try {
      writeFileSync(file('tokens.json'), JSON.stringify({ locT: 'tls-secret-token' }));
      const rows = Array.from({ length: 40 }, (_, i) =>
        JSON.stringify({ locationId: 'locT', type: 'SMS', contactId: `c${i}`, message: `over TLS ${i}`, altId: `tls-${i}` }),
      );
      writeFileSync(file('in.ndjson'), `${rows.join('\n')}\n`);
      const imported = spawnSync(process.execPath, [INGEST, 'import', file('in.ndjson'), '--json'], { env: env(), encoding: 'utf8' });
      expect(imported.stderr).not.toContain('Error');
      expect(imported.status).toBe(0);
      expect(JSON.parse(imported.stdout)).toMatchObject({ accepted: 40 });

      const worker = spawn(process.execPath, [WORKER], {
        env: env({ GHL_API_BASE_URL: fake.url, GHL_TOKENS_FILE: file('tokens.json'), ADMIN_PORT: '0', WORKER_LOCK_MS: '2000' }),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      worker.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const deadline = Date.now() + 30_000;
      while (fake.stats().accepted < 40 && Date.now() < deadline && worker.exitCode === null) await sleep(50);
      expect(fake.stats(), stderr).toMatchObject({ accepted: 40, duplicateAltIds: 0 });
      worker.kill('SIGTERM');
      const [code] = (await once(worker, 'exit')) as [number | null];
      expect(code, stderr).toBe(0);
    } finally {
      await fake.close();
    }
  }, 60_000);

  it('a wrong password fails with a clear error that does not print the password', () => {
    const r = spawnSync(process.execPath, [INGEST, 'status'], { env: env({ REDIS_URL: url('not-the-password-91') }), encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot reach Redis at rediss:\/\/ingest:\*\*\*@127\.0\.0\.1:\d+ \((WRONGPASS|.*password)/);
    expect(r.stderr).not.toContain('not-the-password-91');
  });

  it('a certificate from an untrusted CA is refused', () => {
    const { NODE_EXTRA_CA_CERTS: _, ...untrusting } = env();
    const r = spawnSync(process.execPath, [INGEST, 'status'], { env: untrusting, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot reach Redis at rediss:.*(self-signed|certificate|unable to verify)/i);
    expect(r.stderr).not.toContain(PASSWORD);
  });
});
