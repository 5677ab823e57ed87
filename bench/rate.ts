/**
 * Rate benchmark: several worker processes, many locations, each kept busy, against the stand-in
 * counting in a strict rolling window. Reports per-location utilisation (delivered / what the
 * budget allows over the measured interval), 429s, fairness (Jain's index over locations), and
 * Redis commands per delivered message (from a Redis of its own, so the count is ours alone).
 * A location whose budget another client also spends is measured in a second scenario.
 */
import { Enqueuer } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData } from '@ghl-ingest/schema';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fmt, node, ownRedis, standIn, stopChild, until, type OwnRedis } from './support.ts';

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
  /** Unknown outcomes: this share of posts is recorded, then its connection reset; GHL_RECONCILE as given. */
  resets?: { share: number; reconcile: 'on' | 'off' };
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
  const own = await ownRedis('bench-rate');
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
    ...(s.resets === undefined ? [] : ['--fault-drop-after', String(s.resets.share)]),
  ]);
  // Enough for every location to stay busy throughout.
  const perLocation = Math.ceil((s.max * (s.seconds * 1000 + 3 * s.windowMs)) / s.windowMs) + 20;
  const enqueuer = new Enqueuer(own.client, 'rb', 10);
  for (const loc of locations) await enqueuer.enqueue(jobs(loc, perLocation));
  await enqueuer.close();

  const env = {
    ...own.env,
    QUEUE_PREFIX: 'rb',
    GHL_API_BASE_URL: stand.url,
    GHL_TOKENS_FILE: workerTokens,
    GHL_RATE_LIMIT_MAX: String(s.max),
    GHL_RATE_LIMIT_WINDOW_MS: String(s.windowMs),
    HTTP_TIMEOUT_MS: '10000',
    LOG_LEVEL: 'warn',
    ADMIN_PORT: '0',
    ...(s.resets === undefined ? {} : { GHL_RECONCILE: s.resets.reconcile }),
  };
  const workers = Array.from({ length: s.processes }, () => node('apps/worker/src/main.ts', env));
  const rival =
    s.rival === undefined ? undefined : setInterval(() => void stand.admin('POST', 'spend', { locationId: locations[0], count: s.rival }), s.windowMs);

  await sleep(s.windowMs + 2000); // warm-up: processes start and the first windows fill
  const before = await stand.stats();
  const commandsBefore = await own.info('stats', 'total_commands_processed');
  const scriptsBefore = await scriptCalls(own);
  const started = performance.now();
  await sleep(s.seconds * 1000);
  const after = await stand.stats();
  const arrivals = await Promise.all(
    locations.map(async (l) =>
      ((await stand.admin('GET', `messages?locationId=${l}&offset=${before.acceptedByLocation[l] ?? 0}`)) as { t: number }[]).map((m) => m.t),
    ),
  );
  const commands = (await own.info('stats', 'total_commands_processed')) - commandsBefore;
  const scripts = (await scriptCalls(own)) - scriptsBefore;
  const elapsed = performance.now() - started;
  // With unknown outcomes, the retries (and their lookups) come after the backlog: the run goes on
  // until every message is at the stand-in, and the lookups and duplicates are counted over all of it.
  let drained: Awaited<ReturnType<typeof stand.stats>> | undefined;
  if (s.resets !== undefined) {
    const total = perLocation * locations.length;
    await until(
      async () => {
        const now = await stand.stats();
        return now.accepted - now.duplicateAltIds >= total;
      },
      300_000,
      'every message delivered',
    );
    drained = await stand.stats();
  }

  if (rival !== undefined) clearInterval(rival);
  await Promise.all(workers.map((w) => stopChild(w)));
  await stand.stop();
  await own.stop();

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
    `${s.name} (${own.label}): ${s.processes} processes, ${s.locations} locations, ${s.max} per ${s.windowMs / 1000} s, ${fmt(elapsed / 1000, 1)} s measured\n` +
      `  utilisation per location: min ${fmt(sorted[0] ?? 0, 3)}, median ${fmt(sorted[Math.floor(sorted.length / 2)] ?? 0, 3)}, max ${fmt(sorted.at(-1) ?? 0, 3)} (goal >= 0.97)\n` +
      `  429s: ${refused}${s.rival === undefined ? ' (goal 0)' : ` over ${fmt(elapsed / s.windowMs, 0)} windows (goal <= 1 per window)`}\n` +
      `  fairness (Jain's index): ${fmt(jain(measured), 4)} (goal >= 0.99)\n` +
      `  Redis per delivered message: ${fmt(scripts / Math.max(1, total), 1)} script calls (ours and BullMQ's), ` +
      `${fmt(commands / Math.max(1, total), 1)} commands counting those the scripts run\n`,
  );
  if (s.resets !== undefined && drained !== undefined) {
    const reads = drained.reads;
    const requests = drained.requests;
    process.stdout.write(
      `  unknown outcomes (${fmt(s.resets.share * 100, 0)} % of posts reset after recording), GHL_RECONCILE=${s.resets.reconcile}: ` +
        `over the whole run, ${drained.dropped} resets; lookup reads ${reads} of ${requests} requests (${fmt((100 * reads) / Math.max(1, requests), 1)} %), duplicates at the stand-in ${drained.duplicateAltIds}\n`,
    );
  }
  if (s.rival !== undefined) {
    const first = (after.acceptedByLocation[locations[0] as string] ?? 0) - (before.acceptedByLocation[locations[0] as string] ?? 0);
    const left = s.max - s.rival;
    process.stdout.write(`  the spent location: ${first} delivered, ${fmt(first / ((left * elapsed) / s.windowMs), 3)} of what the rival left\n`);
  }
}

/** Top-level script calls (EVALSHA/EVAL), each one round trip, over every master. */
async function scriptCalls(own: OwnRedis): Promise<number> {
  const calls = await Promise.all(['evalsha', 'eval', 'evalsha_ro', 'eval_ro'].map((c) => own.info('commandstats', `cmdstat_${c}:calls`)));
  return calls.reduce((a, b) => a + b, 0);
}

export async function rateBench(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const only = process.env.BENCH_RATE_SCENARIO;
  const scenarios: Scenario[] = [
    { name: 'short window', locations: 20, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 60 },
    { name: 'shared location', locations: 5, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 40, rival: 8 },
    { name: 'real limits', locations: 20, processes: 3, max: 100, windowMs: 10_000, seconds: quick ? 30 : 60 },
    // Side by side: the same resets, looked up before posting again or not (issue 15).
    { name: 'resets, reconcile on', locations: 20, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 60, resets: { share: 0.02, reconcile: 'on' } },
    {
      name: 'resets, reconcile off',
      locations: 20,
      processes: 3,
      max: 20,
      windowMs: 2000,
      seconds: quick ? 20 : 60,
      resets: { share: 0.02, reconcile: 'off' },
    },
  ];
  for (const s of scenarios) if (only === undefined || s.name === only) await run(s);
}
