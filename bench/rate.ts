/**
 * Rate benchmark: several worker processes, many locations, each kept busy, against the stand-in
 * counting in a strict rolling window. Reports per-location utilisation (delivered / what the
 * budget allows over the measured interval), 429s, fairness (Jain's index over locations), and
 * Redis commands per delivered message (from a Redis of its own, so the count is ours alone).
 * A location whose budget another client also spends is measured in a second scenario.
 */
import { createRedis, Enqueuer } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData } from '@ghl-ingest/schema';
import { RedisServer } from '@ghl-ingest/testing';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fmt, node, standIn, stopChild } from './support.ts';

interface Scenario {
  name: string;
  locations: number;
  processes: number;
  max: number;
  windowMs: number;
  /** Measured interval, after a warm-up of one window. */
  seconds: number;
  /** Another client spends this many of each window of location 0. */
  rival?: number;
}

function jobs(locationId: string, count: number): JobData[] {
  return Array.from({ length: count }, (_, i) => {
    const r = normalizeRecord({ locationId, type: 'SMS', contactId: `c${i}`, message: `rate bench ${i}`, altId: `${locationId}-${i}` });
    if (!r.ok) throw new Error('bad record');
    return toJobData(r.record, 'backfill');
  });
}

const jain = (xs: number[]) => xs.reduce((a, b) => a + b, 0) ** 2 / (xs.length * xs.reduce((a, b) => a + b * b, 0));

async function run(s: Scenario): Promise<void> {
  const server = await RedisServer.start();
  const redis = createRedis(server.url, 'worker', 'bench-rate');
  const locations = Array.from({ length: s.locations }, (_, i) => `loc${String(i).padStart(2, '0')}`);
  // A token per location, on both sides: HighLevel's budget is per location, and so per token.
  const dir = mkdtempSync(join(tmpdir(), 'ghl-bench-'));
  const workerTokens = join(dir, 'tokens.json');
  const standTokens = join(dir, 'stand-tokens.json');
  writeFileSync(workerTokens, JSON.stringify(Object.fromEntries(locations.map((l) => [l, `tok-${l}`]))));
  writeFileSync(standTokens, JSON.stringify(Object.fromEntries(locations.map((l) => [`tok-${l}`, l]))));
  const stand = await standIn([
    '--tokens',
    standTokens,
    '--rate-max',
    String(s.max),
    '--rate-window-ms',
    String(s.windowMs),
    '--window',
    'rolling',
    '--latency',
    '20-80',
    '--no-record-bodies',
  ]);
  // Enough for every location to stay busy throughout.
  const perLocation = Math.ceil((s.max * (s.seconds * 1000 + 3 * s.windowMs)) / s.windowMs) + 20;
  const enqueuer = new Enqueuer(redis, 'rb', 10);
  for (const loc of locations) await enqueuer.enqueue(jobs(loc, perLocation));
  await enqueuer.close();

  const env = {
    REDIS_URL: server.url,
    QUEUE_PREFIX: 'rb',
    GHL_API_BASE_URL: stand.url,
    GHL_TOKENS_FILE: workerTokens,
    GHL_RATE_LIMIT_MAX: String(s.max),
    GHL_RATE_LIMIT_WINDOW_MS: String(s.windowMs),
    HTTP_TIMEOUT_MS: '10000',
    LOG_LEVEL: 'warn',
    ADMIN_PORT: '0',
  };
  const workers = Array.from({ length: s.processes }, () => node('apps/worker/src/main.ts', env));
  const rival =
    s.rival === undefined ? undefined : setInterval(() => void stand.admin('POST', 'spend', { locationId: locations[0], count: s.rival }), s.windowMs);

  await sleep(s.windowMs + 2000); // warm-up: processes start and the first windows fill
  const before = await stand.stats();
  const commandsBefore = await totalCommands(redis);
  const scriptsBefore = await scriptCalls(redis);
  const started = performance.now();
  await sleep(s.seconds * 1000);
  const after = await stand.stats();
  const arrivals = await Promise.all(
    locations.map(async (l) =>
      ((await stand.admin('GET', `messages?locationId=${l}&offset=${before.acceptedByLocation[l] ?? 0}`)) as { t: number }[]).map((m) => m.t),
    ),
  );
  const commands = (await totalCommands(redis)) - commandsBefore;
  const scripts = (await scriptCalls(redis)) - scriptsBefore;
  const elapsed = performance.now() - started;

  if (rival !== undefined) clearInterval(rival);
  await Promise.all(workers.map((w) => stopChild(w)));
  await redis.quit();
  await stand.stop();
  await server.stop();

  const delivered = locations.map((l) => (after.acceptedByLocation[l] ?? 0) - (before.acceptedByLocation[l] ?? 0));
  const measured = s.rival === undefined ? delivered : delivered.slice(1);
  // Delivered over what the budget allows from a location's first arrival in the measured
  // interval to its last, plus the one window its first burst used: sending in bursts, a fixed
  // interval would catch a whole number of bursts and say 0.9 or 1.0 by luck of phase.
  const utilisation = (s.rival === undefined ? arrivals : arrivals.slice(1)).map((times) => {
    const span = (Math.max(...times) - Math.min(...times)) / s.windowMs + 1;
    return times.length / (s.max * span);
  });
  const total = delivered.reduce((a, b) => a + b, 0);
  const refused = after.rateLimited - before.rateLimited;
  const sorted = [...utilisation].sort((a, b) => a - b);
  process.stdout.write(
    `${s.name}: ${s.processes} processes, ${s.locations} locations, ${s.max} per ${s.windowMs / 1000} s, ${fmt(elapsed / 1000, 1)} s measured\n` +
      `  utilisation per location: min ${fmt(sorted[0] ?? 0, 3)}, median ${fmt(sorted[Math.floor(sorted.length / 2)] ?? 0, 3)}, max ${fmt(sorted.at(-1) ?? 0, 3)} (goal >= 0.97)\n` +
      `  429s: ${refused}${s.rival === undefined ? ' (goal 0)' : ` over ${fmt(elapsed / s.windowMs, 0)} windows (goal <= 1 per window)`}\n` +
      `  fairness (Jain's index): ${fmt(jain(measured), 4)} (goal >= 0.99)\n` +
      `  Redis per delivered message: ${fmt(scripts / Math.max(1, total), 1)} script calls (ours and BullMQ's), ` +
      `${fmt(commands / Math.max(1, total), 1)} commands counting those the scripts run\n`,
  );
  if (s.rival !== undefined) {
    const first = (after.acceptedByLocation[locations[0] as string] ?? 0) - (before.acceptedByLocation[locations[0] as string] ?? 0);
    const left = s.max - s.rival;
    process.stdout.write(`  the spent location: ${first} delivered, ${fmt(first / ((left * elapsed) / s.windowMs), 3)} of what the rival left\n`);
  }
}

/** Top-level script calls (EVALSHA/EVAL), each one round trip. */
async function scriptCalls(redis: ReturnType<typeof createRedis>): Promise<number> {
  const info = await redis.info('commandstats');
  let calls = 0;
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval|evalsha_ro|eval_ro):calls=(\d+)/g)) calls += Number(m[1]);
  return calls;
}

async function totalCommands(redis: ReturnType<typeof createRedis>): Promise<number> {
  const info = await redis.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0);
}

export async function rateBench(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const only = process.env.BENCH_RATE_SCENARIO;
  const scenarios: Scenario[] = [
    { name: 'short window', locations: 20, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 60 },
    { name: 'shared location', locations: 5, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 40, rival: 8 },
    { name: 'real limits', locations: 20, processes: 3, max: 100, windowMs: 10_000, seconds: quick ? 30 : 60 },
  ];
  for (const s of scenarios) if (only === undefined || s.name === only) await run(s);
}
