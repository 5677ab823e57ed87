/**
 * `pnpm demo`: the main job on embedded defaults, in about a minute. A Redis (the Redis Cluster
 * REDIS_CLUSTER_NODES names; else REDIS_URL if one answers; else a redis-server of its own), the HighLevel stand-in with realistic latency, a few
 * faults and a short rate window, two workers, and an import of demo/sample.ndjson (2,424 mixed
 * messages over three locations, some of them bad) followed to the end. Then a report, and where
 * to look next. It stops everything it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { createRedis, DeadLetters, whenReady, type RedisTarget } from '@ghl-ingest/queue';
import { RedisServer, waitForPing } from '@ghl-ingest/testing';

const ROOT = resolve(import.meta.dirname, '..');
const LOCATIONS = ['acme-dental', 'brightside-gym', 'cornerstone-law'];
const say = (text: string) => process.stdout.write(`${text}\n`);

interface DemoRedis {
  /** What the demo's processes are given (REDIS_URL, or REDIS_CLUSTER_NODES). */
  env: Record<string, string>;
  target: RedisTarget;
  /** For the report. */
  label: string;
  stop: () => Promise<void>;
  own: boolean;
}

async function redisForDemo(): Promise<DemoRedis> {
  const nodes = process.env.REDIS_CLUSTER_NODES;
  if (nodes !== undefined && nodes !== '') {
    const target = { redisUrl: 'redis://127.0.0.1:1', redisClusterNodes: nodes.split(',').map((n) => n.trim()) };
    const probe = createRedis(target, 'producer', 'demo-probe');
    probe.on('error', () => undefined);
    try {
      await whenReady(probe, 5_000);
    } catch {
      say(`The Redis Cluster at ${nodes} does not answer (REDIS_CLUSTER_NODES).`);
      process.exit(1);
    } finally {
      probe.disconnect();
    }
    return { env: { REDIS_CLUSTER_NODES: nodes }, target, label: `Redis Cluster ${nodes}`, stop: () => Promise.resolve(), own: false };
  }
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  try {
    await waitForPing(url, 1500);
    return { env: { REDIS_URL: url }, target: url, label: url, stop: () => Promise.resolve(), own: false };
  } catch {
    try {
      const server = await RedisServer.start();
      return { env: { REDIS_URL: server.url }, target: server.url, label: server.url, stop: () => server.stop(), own: true };
    } catch {
      say(`No Redis answers at ${url}, and there is no redis-server on PATH to start one.`);
      say('Install one (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), or set REDIS_URL.');
      process.exit(1);
    }
  }
}

async function main(): Promise<void> {
  const rows = process.env.DEMO_ROWS === undefined ? undefined : Number(process.env.DEMO_ROWS);
  const dir = mkdtempSync(join(tmpdir(), 'ghl-demo-'));
  let sample = resolve(ROOT, 'demo/sample.ndjson');
  if (rows !== undefined) {
    const cut = join(dir, 'sample.ndjson');
    writeFileSync(cut, `${readFileSync(sample, 'utf8').split('\n').slice(0, rows).join('\n')}\n`);
    sample = cut;
  }
  say('ghl-ingest demo: import message history into a (local, simulated) HighLevel\n');
  const redis = await redisForDemo();
  say(`  Redis           ${redis.label}${redis.own ? ' (started for the demo)' : ''}`);
  const tokens = Object.fromEntries(LOCATIONS.map((l) => [`demo-token-${l}`, l]));
  const fake = await FakeHighLevel.start({
    tokens,
    limits: { max: 50, windowMs: 2000, daily: 200_000, mode: 'rolling' },
    latency: { minMs: 30, maxMs: 120, slowProbability: 0.005, slowMs: 800 },
    faults: { status503: 0.02, empty201: 0.005, drop: 0.005 },
    providers: ['prov-whatsapp', 'prov-voice'],
    recordBodies: false,
  });
  say(`  HighLevel       ${fake.url} (stand-in: 50 requests per 2 s per location, 30-120 ms and a few slow answers, some 503s, resets and empty answers)`);
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify(Object.fromEntries(LOCATIONS.map((l) => [l, `demo-token-${l}`]))));
  const prefix = `demo-${Date.now().toString(36)}`;
  const env = {
    ...process.env,
    ...redis.env,
    QUEUE_PREFIX: prefix,
    GHL_API_BASE_URL: fake.url,
    GHL_TOKENS_FILE: tokensFile,
    GHL_RATE_LIMIT_MAX: '50',
    GHL_RATE_LIMIT_WINDOW_MS: '2000',
    HTTP_TIMEOUT_MS: '1000',
    LOG_LEVEL: 'warn',
    ADMIN_PORT: '0',
  };
  const workers: ChildProcess[] = [0, 1].map(() =>
    spawn(process.execPath, [resolve(ROOT, 'apps/worker/src/main.ts')], { env, stdio: ['ignore', 'ignore', 'inherit'] }),
  );
  say(`  workers         2 processes (pnpm worker), queue prefix ${prefix}\n`);

  const rejects = join(dir, 'sample.rejects.ndjson');
  say(`Importing ${sample} and following its delivery (pnpm ingest import ... --wait):\n`);
  const started = Date.now();
  const importer = spawn(process.execPath, [resolve(ROOT, 'apps/producer/src/main.ts'), 'import', sample, '--wait', '--rejects', rejects], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const [code] = (await once(importer, 'exit')) as [number | null];
  const seconds = Math.round((Date.now() - started) / 1000);

  const connection = createRedis(redis.target, 'producer', `${prefix}:demo`);
  await whenReady(connection, 5_000);
  const dlq = new DeadLetters(connection, prefix);
  const dead = await dlq.all();
  const byReason = new Map<string, number>();
  for (const d of dead) {
    const reason = `${d.class} (${d.httpStatus ?? 'no answer'}): ${d.reason.replace(/\(after \d+ attempts?\)/, '').trim()}`;
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }
  const stats = fake.stats();
  const rejected = readFileSync(rejects, 'utf8')
    .split('\n')
    .filter((l) => l !== '').length;

  say(`\nReport (${seconds} s):`);
  say(`  delivered       ${stats.accepted - stats.duplicateAltIds} messages; HighLevel saw ${stats.duplicateAltIds} duplicates`);
  if (stats.duplicateAltIds > 0) {
    say('                  (requests HighLevel recorded but whose answer never arrived: see Guarantees in the README)');
  }
  say(`  rejected        ${rejected} rows, with line and reason, in ${rejects}`);
  say(`  dead-lettered   ${dead.length}${dead.length === 0 ? '' : ':'}`);
  for (const [reason, count] of [...byReason].sort((a, b) => b[1] - a[1])) say(`    ${String(count).padStart(5)}  ${reason}`);
  say(
    `  HighLevel       ${stats.requests} requests: ${Object.entries(stats.byStatus)
      .map(([s, c]) => `${c} x ${s}`)
      .join(', ')}, ${stats.dropped} connection resets, ${stats.rateLimited} x 429`,
  );
  say(`\nWhere to look next (with the same ${redis.env.REDIS_CLUSTER_NODES === undefined ? 'REDIS_URL' : 'REDIS_CLUSTER_NODES'} and QUEUE_PREFIX):`);
  say(`  QUEUE_PREFIX=${prefix} pnpm ingest status          per location: pending, delivered, rate, budget`);
  say(`  QUEUE_PREFIX=${prefix} pnpm ingest dlq list        what failed for good, and why`);
  say(`  QUEUE_PREFIX=${prefix} pnpm ingest dlq export      fix them and import them again`);
  if (redis.own) say("  (this demo's Redis stops with it: run it with REDIS_URL to keep the data)");

  await dlq.close();
  await connection.quit();
  await Promise.all(
    workers.map(async (w) => {
      w.kill('SIGTERM');
      await once(w, 'exit');
    }),
  );
  await fake.close();
  await redis.stop();
  process.exitCode = code === 0 || code === 2 ? 0 : 1;
}

await main();
