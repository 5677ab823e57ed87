/**
 * ghl-ingest on a real Redis Cluster (3 masters, 3 replicas, started from redis-server), run as a
 * user runs it with only REDIS_CLUSTER_NODES set: `ingest import` of a file with bad rows, two
 * `pnpm worker` processes, messages HighLevel refuses (dead letters), then `ingest status` and
 * `ingest dlq list`. Keys spread over the masters; nothing lost; no token in any node's data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { createProducer } from '@ghl-ingest/producer';
import { loadConfig } from '@ghl-ingest/queue';
import { nodeArgsOf, RedisCluster, until, useTempDirs } from '@ghl-ingest/testing';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const TOKEN = 'cluster-secret-token-7f3a9c';

describe('on a Redis Cluster', () => {
  const tempDir = useTempDirs();
  let cluster: RedisCluster;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    cluster = await RedisCluster.start();
  }, 60_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await cluster.stop();
  });

  /** What a user sets to run on the cluster: its nodes, a prefix of the test's own, the stand-in, a token. */
  function clusterEnv(prefix: string, api: string, extra: Record<string, string> = {}): Record<string, string> {
    return { REDIS_CLUSTER_NODES: cluster.nodesSetting, QUEUE_PREFIX: prefix, GHL_API_BASE_URL: api, GHL_TOKEN: TOKEN, LOG_LEVEL: 'warn', ...extra };
  }

  function run(
    script: 'worker' | 'ingest',
    args: string[],
    env: Record<string, string>,
  ): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const child = spawn(process.execPath, [...nodeArgsOf(script), ...args], {
      cwd: root,
      env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const exited = once(child, 'exit').then(([code]) => code as number | null);
    return { child, output: () => text, exited };
  }

  it('import, two workers, dead letters, status and dlq with only REDIS_CLUSTER_NODES set', async () => {
    const fake = await FakeHighLevel.start({ maxMessageChars: 40 });
    const prefix = `c${randomBytes(3).toString('hex')}`;
    // REDIS_URL points nowhere: everything must go to the cluster.
    const env = clusterEnv(prefix, fake.url);
    const dir = tempDir('ghl-cluster-');
    const file = join(dir, 'history.ndjson');
    const rows = [
      ...Array.from({ length: 60 }, (_, i) => ({ locationId: `cl${i % 12}`, type: 'SMS', contactId: `c${i}`, message: `cluster ${i}`, altId: `cl-${i}` })),
      { locationId: 'cl1', type: 'SMS', contactId: 'c-long', message: 'this one is far too long for the stand-in to take', altId: 'cl-long-1' },
      { locationId: 'cl2', type: 'SMS', contactId: 'c-long', message: 'and this one is far too long for the stand-in too', altId: 'cl-long-2' },
    ];
    writeFileSync(file, [...rows.map((r) => JSON.stringify(r)), '{"locationId": "cl3", "type": "Pigeon"}', 'not json'].join('\n'));
    try {
      const imp = run('ingest', ['import', file, '--json'], env);
      expect(await imp.exited, imp.output()).toBe(2); // finished, with rejected rows
      expect(JSON.parse(imp.output().slice(imp.output().indexOf('{')))).toMatchObject({ accepted: 62, rejected: 2 });

      const workers = [run('worker', [], env), run('worker', [], env)];
      await until(() => fake.stats().accepted >= 60, 60_000, '60 deliveries');

      const status = run('ingest', ['status', '--json'], env);
      expect(await status.exited, status.output()).toBe(0);
      const dlq = run('ingest', ['dlq', 'list', '--json'], env);
      await until(
        async () => {
          const again = run('ingest', ['dlq', 'list', '--json'], env);
          await again.exited;
          return (
            again
              .output()
              .trim()
              .split('\n')
              .filter((l) => l.startsWith('{')).length === 2
          );
        },
        30_000,
        'two dead letters',
      );
      expect(await dlq.exited).toBe(0);
      const totals = (JSON.parse(status.output()) as { totals: Record<string, unknown> }).totals;
      expect(totals).toBeDefined();
      expect(fake.stats().accepted).toBe(60);
      expect(fake.stats().duplicateAltIds).toBe(0);

      for (const w of workers) w.child.kill('SIGTERM');
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

      // Keys spread over the masters, and no node holds the token.
      const client = new Cluster(cluster.nodesSetting.split(',').map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })));
      try {
        await until(() => client.status === 'ready', 10_000, 'the cluster client');
        const perMaster = await Promise.all(
          client.nodes('master').map(async (node) => {
            const keys: string[] = [];
            let cursor = '0';
            do {
              const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
              cursor = next;
              keys.push(...found);
            } while (cursor !== '0');
            const dumps = await Promise.all(keys.map((k) => node.dumpBuffer(k)));
            return { queues: keys.filter((k) => k.includes(':loc.{')).length, leaks: dumps.filter((d) => d.includes(TOKEN)).length };
          }),
        );
        console.log(`cluster: location queue keys per master ${perMaster.map((m) => m.queues).join(' / ')}; status totals ${JSON.stringify(totals)}`);
        expect(perMaster.filter((m) => m.queues > 0)).toHaveLength(3);
        expect(perMaster.reduce((a, m) => a + m.leaks, 0)).toBe(0);
      } finally {
        client.disconnect();
      }
    } finally {
      await fake.close();
    }
  }, 120_000);

  // Rate limits across processes, on the cluster: three locations, each with its own token (the
  // stand-in keeps a budget per token's location), two worker processes sharing the budget.
  it('the rate limit holds on the cluster across processes: the stand-in never answers 429, the budget is used', async () => {
    const locations = ['rl0', 'rl1', 'rl2'];
    const tokens = Object.fromEntries(locations.map((l) => [l, `${TOKEN}-${l}`]));
    const fake = await FakeHighLevel.start({
      limits: { max: 10, windowMs: 1_000, daily: 200_000 },
      latency: { minMs: 5, maxMs: 60 },
      tokens: Object.fromEntries(locations.map((l) => [tokens[l] as string, l])),
    });
    const prefix = `r${randomBytes(3).toString('hex')}`;
    const tokensFile = join(tempDir('ghl-cluster-'), 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(tokens));
    const { GHL_TOKEN: _oneToken, ...env } = clusterEnv(prefix, fake.url, {
      GHL_TOKENS_FILE: tokensFile,
      GHL_RATE_LIMIT_MAX: '10',
      GHL_RATE_LIMIT_WINDOW_MS: '1000',
    });
    try {
      // Enqueued with the library, as a sync process would.
      const producer = await createProducer({ config: loadConfig({ ...env, REDIS_URL: 'redis://127.0.0.1:1' }) });
      const results = await producer.send(
        locations.flatMap((l) =>
          Array.from({ length: 40 }, (_, i) => ({ locationId: l, type: 'SMS', contactId: `c${i}`, message: `rate ${i}`, altId: `${l}-${i}` })),
        ),
      );
      await producer.close();
      expect(results.every((r) => r.ok)).toBe(true);
      const workers = [run('worker', [], env), run('worker', [], env)];
      await until(() => fake.stats().accepted >= 120, 30_000, '120 deliveries');
      expect(fake.stats().rateLimited).toBe(0);
      expect(fake.stats().duplicateAltIds).toBe(0);
      for (const location of locations) {
        const times = fake
          .messages()
          .filter((m) => m.locationId === location)
          .map((m) => m.receivedAt);
        expect(times).toHaveLength(40);
        // 40 at 10 per second: about 4 windows, not much more (the budget is used, not just respected).
        expect(Math.max(...times) - Math.min(...times), location).toBeLessThan(6_500);
      }
      for (const w of workers) w.child.kill('SIGTERM');
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);
    } finally {
      await fake.close();
    }
  }, 60_000);

  it('pnpm demo runs on the cluster with only REDIS_CLUSTER_NODES set', async () => {
    const child = spawn(process.execPath, [join(root, 'scripts/demo.ts')], {
      cwd: root,
      env: { ...process.env, DEMO_ROWS: '400', REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER_NODES: cluster.nodesSetting },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(stderr).not.toMatch(/Error|ERR_/);
    expect(code, stdout).toBe(0);
    expect(stdout).toContain(`Redis Cluster ${cluster.nodesSetting}`);
    expect(stdout).toMatch(/delivered\s+\d{3} messages; HighLevel saw 0 duplicates/);
    expect(stdout).toMatch(/dead-lettered\s+[1-9]/);
    expect(stdout).toContain('with the same REDIS_CLUSTER_NODES and QUEUE_PREFIX');
  }, 150_000);

  it('the intake during a failover: 202 or 503 with Retry-After, never a 500, and it accepts again by itself', async () => {
    const prefix = `i${randomBytes(3).toString('hex')}`;
    const intake = run('ingest', ['serve', '--port', '0'], clusterEnv(prefix, 'http://127.0.0.1:1'));
    await until(() => /intake listening on (\S+)/.test(intake.output()), 20_000, 'the intake');
    const url = /intake listening on (\S+)/.exec(intake.output())?.[1] ?? '';
    const statuses = new Map<string, number>();
    let retryAfterMissing = 0;
    const sending = { on: true };
    let n = 0;
    const sender = (async () => {
      while (sending.on) {
        n += 1;
        const res = await fetch(`${url}/v1/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ locationId: `iv${n % 12}`, type: 'SMS', contactId: `c${n}`, message: `live ${n}`, altId: `iv-${n}` }),
        });
        await res.arrayBuffer();
        statuses.set(String(res.status), (statuses.get(String(res.status)) ?? 0) + 1);
        if (res.status === 503 && res.headers.get('retry-after') === null) retryAfterMissing += 1;
        if (res.status !== 202) await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await until(() => (statuses.get('202') ?? 0) >= 50, 10_000, '50 accepted before the kill');
    const victim = (await cluster.nodes()).find((m) => m.role === 'master' && m.healthy);
    if (victim === undefined) throw new Error('no master');
    await cluster.server(victim.port).kill();
    await cluster.waitUntilHealthy(30_000);
    const acceptedAfterFailover = statuses.get('202') ?? 0;
    await until(() => (statuses.get('202') ?? 0) >= acceptedAfterFailover + 50, 20_000, '50 accepted after the failover');
    sending.on = false;
    await sender;
    console.log(`intake during a failover: ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect([...statuses.keys()].filter((s) => s !== '202' && s !== '503')).toEqual([]);
    expect(retryAfterMissing).toBe(0);
    intake.child.kill('SIGTERM');
    expect(await intake.exited).toBe(0);
    // The old master comes back as a replica: the cluster is whole again for the next test.
    await cluster.server(victim.port).restart();
    await cluster.waitUntilHealthy(30_000);
  }, 120_000);

  it('a master SIGKILLed mid-run: its replica takes over, the workers carry on by themselves, and the import run again recovers what the failover lost', async () => {
    const fake = await FakeHighLevel.start({ latency: { minMs: 5, maxMs: 25 }, limits: { max: 1_000_000, windowMs: 1_000, daily: 100_000_000 } });
    const prefix = `f${randomBytes(3).toString('hex')}`;
    const env = clusterEnv(prefix, fake.url, { GHL_RATE_LIMIT_MAX: '1000', GHL_RATE_LIMIT_WINDOW_MS: '1000' });
    const dir = tempDir('ghl-failover-');
    const file = join(dir, 'history.ndjson');
    const total = 3000;
    writeFileSync(
      file,
      Array.from({ length: total }, (_, i) =>
        JSON.stringify({ locationId: `fo${i % 24}`, type: 'SMS', contactId: `c${i}`, message: `failover ${i}`, altId: `fo-${i}` }),
      ).join('\n'),
    );
    try {
      const first = run('ingest', ['import', file, '--json'], env);
      expect(await first.exited, first.output()).toBe(0);
      const workers = [run('worker', [], env), run('worker', [], env)];
      await until(() => fake.stats().accepted >= 500, 60_000, '500 deliveries before the kill');

      // The master holding the most of this run's location queues dies.
      const nodes = await cluster.nodes();
      const counts = await Promise.all(
        nodes
          .filter((n) => n.role === 'master' && n.healthy)
          .map(async (n) => {
            const client = new Cluster([{ host: '127.0.0.1', port: n.port }]);
            try {
              await until(() => client.status === 'ready', 10_000, 'a client');
              const node = client.nodes('master').find((m) => m.options.port === n.port);
              const [, keys] = (await node?.scan('0', 'MATCH', `${prefix}:loc.*:meta`, 'COUNT', 10_000)) ?? ['0', []];
              return { port: n.port, keys: keys.length };
            } finally {
              client.disconnect();
            }
          }),
      );
      const victim = counts.sort((a, b) => b.keys - a.keys)[0];
      if (victim === undefined) throw new Error('no master');
      const deliveredAtKill = fake.stats().accepted;
      const killedAt = Date.now();
      await cluster.server(victim.port).kill();
      await cluster.waitUntilHealthy(30_000);
      const failoverMs = Date.now() - killedAt;

      // As the README says to after a failover: run the import again; what the old master lost is enqueued again.
      const again = run('ingest', ['import', file, '--json'], env);
      expect(await again.exited, again.output()).toBe(0);
      const unique = () => new Set(fake.messages().map((m) => m.altId)).size;
      try {
        // A job whose completion the failover lost is given back by BullMQ's stalled-job check, on
        // its second pass: the first runs at the location's first turn after the failover, the
        // second when the wait for what its last holder may still have sent ends (lease end +
        // HTTP_TIMEOUT_MS + a window): about a minute after the kill.
        await until(() => unique() >= total, 150_000, `every message delivered`);
      } catch (error) {
        console.log(
          `after the failover: ${unique()} delivered; worker output:\n${workers
            .map((w) =>
              w
                .output()
                .split('\n')
                .filter((l) => !l.includes('"level":40') || !l.includes('rate limited'))
                .slice(-30)
                .join('\n'),
            )
            .join('\n---\n')}`,
        );
        throw error;
      }
      const stats = fake.stats();
      console.log(
        `failover: master :${victim.port} (${victim.keys} location queues) killed after ${deliveredAtKill} deliveries; cluster healthy again ${failoverMs} ms later; ` +
          `${total} messages: ${unique()} delivered, 0 lost, ${stats.duplicateAltIds} duplicates; second import: ${again.output().trim().split('\n').pop() ?? ''}`,
      );
      expect(unique()).toBe(total);

      for (const w of workers) w.child.kill('SIGTERM');
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);
    } finally {
      await fake.close();
    }
  }, 330_000);
});
