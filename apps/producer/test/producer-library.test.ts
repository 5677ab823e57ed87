/**
 * `createProducer()` inside another application: it leaves the host's environment alone (only the
 * command line reads `.env`), and `status()` answers from what a real worker (`pnpm worker`, a
 * child process) writes while delivering to the stand-in.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FakeHighLevel, type FakeHighLevelOptions } from '@ghl-ingest/fake-api';
import { loadConfig, locationQueueName, SETTINGS, type MessageStatus } from '@ghl-ingest/queue';
import type { InboundRecord } from '@ghl-ingest/schema';
import { nodeArgsOf, until, useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { createProducer, messageKeyOf, type MessageRef, type Producer } from '../src/producer.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

/** The test process's environment without any of the product's settings (the tests give their own). */
function foreignEnv(): Record<string, string> {
  const settings = new Set([...SETTINGS, 'GHL_TEST_CRASH_AFTER_LEDGER_WRITE']);
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !settings.has(e[0])));
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ghl-producer-lib-'));
}

const sms = (locationId: string, key: string, more: Partial<InboundRecord> = {}): InboundRecord => ({
  locationId,
  type: 'SMS',
  contactId: `c-${key}`,
  message: `message ${key}`,
  key,
  ...more,
});

describe('createProducer leaves the host application its environment', () => {
  const redis = useRedis();

  it('never writes to process.env, and reads no .env even with one in the working directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), 'QUEUE_PREFIX=fromdotenv\nGHL_MAX_ATTEMPTS=3\nGHL_PRODUCER_TEST_ONLY=from-dotenv\n');
    const saved = { ...process.env };
    const cwd = process.cwd();
    try {
      // The host's own settings, as a sync service would have them: the ones createProducer() reads.
      for (const name of SETTINGS) Reflect.deleteProperty(process.env, name);
      Object.assign(process.env, redis.env);
      const before = { ...process.env };
      process.chdir(dir);
      const producer = await createProducer();
      try {
        expect(await producer.send([sms('locEnv', 'env-1')])).toEqual([{ ok: true, key: 'k-env-1', locationId: 'locEnv' }]);
        expect(await producer.status({ locationId: 'locEnv', sourceKey: 'env-1' })).toEqual({
          state: 'pending',
          stage: 'queued',
          attempts: 0,
          maxAttempts: 10,
        });
      } finally {
        await producer.close();
      }
      expect({ ...process.env }).toEqual(before);
      // Its settings were the environment's, not the file's: this test's prefix, the default attempts.
      const queue = new Queue(locationQueueName('locEnv'), { connection: redis.client(), prefix: redis.prefix });
      expect((await queue.getJob('k-env-1'))?.opts.attempts).toBe(10);
      await queue.close();
    } finally {
      process.chdir(cwd);
      for (const name of Object.keys(process.env)) if (!(name in saved)) Reflect.deleteProperty(process.env, name);
      Object.assign(process.env, saved);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['pnpm ingest', nodeArgsOf('ingest'), ['status']],
    ['pnpm worker', nodeArgsOf('worker'), []],
    ['ghl-ingest', [resolve(ROOT, 'apps/cli/src/main.ts')], ['status']],
  ])('%s reads the .env of its working directory (and a real variable wins over it)', (_command, args, command) => {
    const dir = tempDir();
    try {
      writeFileSync(join(dir, '.env'), 'GHL_MAX_ATTEMPTS=many\n');
      // Settings are checked before anything connects: no Redis is needed (none listens there).
      const run = (env: Record<string, string>) =>
        spawnSync(process.execPath, [...args, ...command], {
          cwd: dir,
          env: { ...foreignEnv(), REDIS_URL: 'redis://127.0.0.1:1', ...env },
          encoding: 'utf8',
          timeout: 20_000,
        });
      const fromFile = run({});
      expect(fromFile.status).toBe(1);
      expect(fromFile.stderr).toContain('GHL_MAX_ATTEMPTS');
      // A real variable wins over the file: the command stops at the next bad setting instead.
      const real = run({ GHL_MAX_ATTEMPTS: '4', HTTP_TIMEOUT_MS: '1' });
      expect(real.status).toBe(1);
      expect(real.stderr).toContain('HTTP_TIMEOUT_MS');
      expect(real.stderr).not.toContain('GHL_MAX_ATTEMPTS');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Producer.status names a message as users do, and refuses what names none', () => {
  it.each<[string, MessageRef, { locationId: string; key: string }]>([
    ['the key send() answered', { locationId: 'locA', key: 'k-msg-991' }, { locationId: 'locA', key: 'k-msg-991' }],
    [
      'a hash key (a record with neither key nor altId)',
      { locationId: 'locA', key: `h-${'a'.repeat(43)}` },
      { locationId: 'locA', key: `h-${'a'.repeat(43)}` },
    ],
    ["the record's own key or altId", { locationId: 'locA', sourceKey: 'msg-991' }, { locationId: 'locA', key: 'k-msg-991' }],
    ['an own id that needs encoding', { locationId: 'locA', sourceKey: ' row 7:a ' }, { locationId: 'locA', key: 'k-row%207%3Aa' }],
  ])('%s', (_what, ref, expected) => {
    expect(messageKeyOf(ref)).toEqual(expected);
  });

  it.each<[string, unknown]>([
    ['no ref', undefined],
    ['a bad location', { locationId: 'loc:A', key: 'k-1' }],
    ['no location', { key: 'k-1' }],
    ['neither key', { locationId: 'locA' }],
    ['both keys', { locationId: 'locA', key: 'k-1', sourceKey: '1' }],
    ["the record's own id given as key", { locationId: 'locA', key: 'msg-991' }],
    ['an empty sourceKey', { locationId: 'locA', sourceKey: '  ' }],
    ['a sourceKey that is no text', { locationId: 'locA', sourceKey: 42 }],
  ])('refuses %s with a TypeError', (_what, ref) => {
    expect(() => messageKeyOf(ref as MessageRef)).toThrow(TypeError);
  });
});

describe('Producer.status, from what a real worker writes', () => {
  const redis = useRedis();
  let open: { producer: Producer; worker: ChildProcess; fake: FakeHighLevel; dir: string; output: string[] } | undefined;

  // Registered after useRedis(): runs before its check for connections left open.
  afterEach(async () => {
    if (open === undefined) return;
    const { producer, worker, fake, dir } = open;
    open = undefined;
    if (worker.exitCode === null && worker.signalCode === null) {
      const exited = new Promise((done) => worker.once('exit', done));
      worker.kill('SIGTERM');
      await exited;
    }
    await producer.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The stand-in knowing locOk and locBad, a producer, and `pnpm worker` with tokens for those two only. */
  async function start(fakeOptions: FakeHighLevelOptions = {}) {
    const fake = await FakeHighLevel.start({ tokens: { 'tok-ok': 'locOk', 'tok-bad': 'locBad' }, maxMessageChars: 40, ...fakeOptions });
    const dir = tempDir();
    const tokensFile = join(dir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify({ locOk: 'tok-ok', locBad: 'tok-bad' }));
    const env = { ...redis.env, GHL_API_BASE_URL: fake.url, GHL_TOKENS_FILE: tokensFile, GHL_MAX_ATTEMPTS: '10', LOG_LEVEL: 'warn', ADMIN_PORT: '0' };
    const producer = await createProducer({ config: loadConfig(env) });
    const worker = spawn(process.execPath, nodeArgsOf('worker'), { cwd: dir, env: { ...foreignEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    worker.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    worker.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    open = { producer, worker, fake, dir, output };
    return open;
  }

  async function waitFor(producer: Producer, ref: MessageRef, what: string, ok: (s: MessageStatus) => boolean, timeoutMs = 20_000): Promise<MessageStatus> {
    let last: MessageStatus = { state: 'unknown' };
    await until(
      async () => ok((last = await producer.status(ref))),
      timeoutMs,
      () => `${what} (last: ${JSON.stringify(last)}; worker: ${open?.output.join('').slice(-2000) ?? ''})`,
    );
    return last;
  }

  it('delivered, pending, dead-lettered and unknown', async () => {
    const { producer, fake } = await start();
    const startedAt = Date.now();
    const sent = await producer.send([
      sms('locOk', 'ok-1'),
      sms('locBad', 'bad-1', { message: 'longer than the forty characters the stand-in takes' }),
      sms('locHeld', 'held-1'),
    ]);
    expect(sent.map((r) => r.ok)).toEqual([true, true, true]);

    const delivered = await waitFor(producer, { locationId: 'locOk', sourceKey: 'ok-1' }, 'ok-1 delivered', (s) => s.state === 'delivered');
    const [received] = fake.messages({ locationId: 'locOk' });
    expect(delivered).toEqual({ state: 'delivered', messageId: received?.messageId, deliveredAt: expect.any(Number) as number });
    expect(received?.messageId).toEqual(expect.any(String));
    if (delivered.state === 'delivered') expect(delivered.deliveredAt).toBeGreaterThanOrEqual(startedAt);
    // The key send() answered names the same message: a SendResult itself will do.
    const [first] = sent;
    if (first?.ok !== true) throw new Error('ok-1 was refused');
    expect(await producer.status(first)).toEqual(delivered);

    const dead = await waitFor(producer, { locationId: 'locBad', sourceKey: 'bad-1' }, 'bad-1 dead-lettered', (s) => s.state === 'dead-lettered');
    expect(dead).toMatchObject({ state: 'dead-lettered', failureClass: 'permanent', httpStatus: 422, attempts: 1, recordId: 'locBad.k-bad-1' });
    if (dead.state === 'dead-lettered') expect(dead.reason).toContain('422');

    // No token for locHeld: the worker pauses the location, and its message waits.
    const pending = await waitFor(producer, { locationId: 'locHeld', key: 'k-held-1' }, 'held-1 held', (s) => s.state === 'pending' && s.hold !== undefined);
    expect(pending).toMatchObject({ state: 'pending', stage: 'queued', attempts: 0, maxAttempts: 10, hold: { state: 'paused' } });

    expect(await producer.status({ locationId: 'locOk', sourceKey: 'never-sent' })).toEqual({ state: 'unknown' });
    // Keys are per location: the delivered message's key names nothing at another location.
    expect(await producer.status({ locationId: 'locBad', sourceKey: 'ok-1' })).toEqual({ state: 'unknown' });
  });

  it('pending while it waits to retry: attempts so far, when it goes again, why it failed', async () => {
    const { producer } = await start({ faults: { status500: 1 } });
    const failedFrom = Date.now();
    await producer.send([sms('locOk', 'retry-1')]);
    const retrying = await waitFor(
      producer,
      { locationId: 'locOk', sourceKey: 'retry-1' },
      'retry-1 waiting to retry',
      (s) => s.state === 'pending' && s.stage === 'retrying' && s.nextAttemptAt !== undefined,
    );
    expect(retrying).toMatchObject({ state: 'pending', stage: 'retrying', maxAttempts: 10 });
    if (retrying.state !== 'pending') throw new Error('not pending');
    expect(retrying.attempts).toBeGreaterThanOrEqual(1);
    expect(retrying.nextAttemptAt).toBeGreaterThan(failedFrom);
    expect(retrying.lastError).toContain('500');
  });
});
