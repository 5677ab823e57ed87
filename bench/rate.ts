/**
 * Rate benchmark: several worker processes, many locations, each kept busy, against the stand-in
 * counting in a strict rolling window. Reports per-location utilisation, 429s, fairness (Jain's
 * index over locations), Redis commands and CPU per delivered message (from a Redis of its own, so
 * the counts are ours alone), and, where live messages are sent into busy locations, their
 * latency from `send()` to arrival. A location whose budget another client also spends is
 * measured in another scenario.
 *
 * Utilisation is the mean occupancy of the rolling window over the measured interval: for every
 * moment t of it (after its first window), the arrivals in (t - window, t] over max, averaged. It
 * does not depend on the phase of bursts, and reads the same for a sender that spaces its requests
 * as for one that sends in bursts. The earlier measure (arrivals over the budget from a location's
 * first arrival to its last, plus one window) is printed beside it: it assumed bursts, and reads
 * about span / (span + window) for evenly spaced requests however full their windows are.
 *
 * BENCH_RATE_SCENARIO picks one scenario; BENCH_RATE_LOCATIONS sets the number of busy locations.
 */
import { createProducer } from '@ghl-ingest/producer';
import { Enqueuer, loadConfig, locationQueueName } from '@ghl-ingest/queue';
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
  /** Live messages sent with `createProducer().send()` into the first `locations` busy ones, one every `everyMs`, round robin. */
  live?: { locations: number; everyMs: number };
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
  const cpuBefore = await redisCpu(own);
  const statsBefore = process.env.BENCH_RATE_COMMANDSTATS === '1' ? await own.client.info('commandstats') : '';
  const started = performance.now();
  const startedAt = Date.now();
  const liveSends = s.live === undefined ? [] : await sendLive(s, locations, own, stand, s.seconds * 1000);
  await sleep(Math.max(0, s.seconds * 1000 - (performance.now() - started)));
  const endedAt = Date.now();
  const after = await stand.stats();
  const cpu = (await redisCpu(own)) - cpuBefore;
  const statsAfter = statsBefore === '' ? '' : await own.client.info('commandstats');
  const arrivals = await Promise.all(
    locations.map(
      async (l) => (await stand.admin('GET', `messages?locationId=${l}&offset=${before.acceptedByLocation[l] ?? 0}`)) as { t: number; receivedAt: number }[],
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

  if (process.env.BENCH_RATE_DUMP !== undefined) writeFileSync(process.env.BENCH_RATE_DUMP, JSON.stringify(arrivals.map((ms) => ms.map((m) => m.receivedAt))));
  const delivered = locations.map((l) => (after.acceptedByLocation[l] ?? 0) - (before.acceptedByLocation[l] ?? 0));
  const measured = s.rival === undefined ? delivered : delivered.slice(1);
  const owned = s.rival === undefined ? arrivals : arrivals.slice(1);
  // Wall-clock arrivals against the wall-clock interval (same host); the earlier measure used the stand-in's monotonic `t`.
  const occupancy = owned.map((ms) =>
    meanOccupancy(
      ms.map((m) => m.receivedAt),
      startedAt,
      endedAt,
      s.windowMs,
      s.max,
    ),
  );
  // Delivered over what the budget allows from a location's first arrival in the measured
  // interval to its last, plus the one window its first burst used: sending in bursts, a fixed
  // interval would catch a whole number of bursts and say 0.9 or 1.0 by luck of phase.
  const earlier = owned.map((ms) => {
    const times = ms.map((m) => m.t);
    const span = (Math.max(...times) - Math.min(...times)) / s.windowMs + 1;
    return times.length / (s.max * span);
  });
  const total = delivered.reduce((a, b) => a + b, 0);
  const refused = after.rateLimited - before.rateLimited;
  const sorted = [...occupancy].sort((a, b) => a - b);
  const earlierSorted = [...earlier].sort((a, b) => a - b);
  const mid = (xs: number[]) => xs[Math.floor(xs.length / 2)] ?? 0;
  process.stdout.write(
    `${s.name} (${own.label}): ${s.processes} processes, ${s.locations} locations, ${s.max} per ${s.windowMs / 1000} s, ${fmt(elapsed / 1000, 1)} s measured\n` +
      `  utilisation per location (mean window occupancy): min ${fmt(sorted[0] ?? 0, 3)}, median ${fmt(mid(sorted), 3)}, max ${fmt(sorted.at(-1) ?? 0, 3)} (goal: median >= 0.97, min >= 0.95)\n` +
      `  the earlier measure (first to last arrival, plus a window): min ${fmt(earlierSorted[0] ?? 0, 3)}, median ${fmt(mid(earlierSorted), 3)}, max ${fmt(earlierSorted.at(-1) ?? 0, 3)}\n` +
      `  429s: ${refused}${s.rival === undefined ? ' (goal 0)' : ` over ${fmt(elapsed / s.windowMs, 0)} windows (goal <= 1 per window)`}\n` +
      `  fairness (Jain's index): ${fmt(jain(measured), 4)} (goal >= 0.99)\n` +
      `  Redis per delivered message: ${fmt(scripts / Math.max(1, total), 1)} script calls (ours and BullMQ's), ` +
      `${fmt(commands / Math.max(1, total), 1)} commands counting those the scripts run, ${fmt((cpu * 1e6) / Math.max(1, total), 1)} µs of Redis CPU\n`,
  );
  if (statsAfter !== '') {
    // Where the commands go, per delivered message (BENCH_RATE_COMMANDSTATS=1; one Redis only).
    const calls = (text: string) =>
      new Map([...text.matchAll(/cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/g)].map((m) => [m[1] as string, [Number(m[2]), Number(m[3])] as const]));
    const a = calls(statsBefore);
    const rows = [...calls(statsAfter)].map(
      ([name, [n, us]]) => [name, (n - (a.get(name)?.[0] ?? 0)) / Math.max(1, total), (us - (a.get(name)?.[1] ?? 0)) / Math.max(1, total)] as const,
    );
    for (const [name, n, us] of rows.sort((x, y) => y[1] - x[1]).filter((r) => r[1] >= 0.05))
      process.stdout.write(`    ${name.padEnd(28)} ${fmt(n, 2)} calls, ${fmt(us, 1)} µs per message\n`);
  }
  if (s.live !== undefined) {
    const l = liveSends.map((x) => x.total).sort((a, b) => a - b);
    const q = (p: number) => l[Math.min(l.length - 1, Math.floor(p * l.length))] ?? 0;
    process.stdout.write(
      `  live into busy locations: ${l.length} sent with createProducer().send(); send() to arrival p50 ${fmt(q(0.5))} ms, p99 ${fmt(q(0.99))} ms, max ${fmt(l.at(-1) ?? 0)} ms ` +
        `(goal p99 <= 250 ms + one slot interval, ${fmt(250 + s.windowMs / s.max)} ms)\n`,
    );
    const slowest = [...liveSends].sort((a, b) => b.total - a.total).slice(0, 5);
    process.stdout.write(
      `  the slowest, ms (send() to queued + queued to taken by a worker + taken to posted; backfill posts of the location in between): ${slowest
        .map((x) => `${fmt(x.total)} = ${x.parts.map((p) => fmt(p)).join(' + ')} (${x.passedBy})`)
        .join(', ')}\n`,
    );
  }
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

/**
 * The mean occupancy of a rolling window over [from + window, to]: each arrival counts for the
 * part of its window that falls in that interval; over max times the interval's length.
 */
export function meanOccupancy(arrivals: readonly number[], from: number, to: number, windowMs: number, max: number): number {
  const start = from + windowMs;
  if (to <= start) return 0;
  let covered = 0;
  for (const a of arrivals) covered += Math.max(0, Math.min(a + windowMs, to) - Math.max(a, start));
  return covered / (max * (to - start));
}

/** One live send: send() to arrival at the stand-in, and its parts (ms). */
interface LiveSend {
  total: number;
  /** send() to queued (BullMQ's timestamp), queued to taken by a worker (processedOn), taken to posted. */
  parts: [number, number, number];
  /** The location's backfill posts between its taking and its post. */
  passedBy: number;
}

/** Sends live messages into busy locations during the measured interval. */
async function sendLive(s: Scenario, locations: string[], own: OwnRedis, stand: Awaited<ReturnType<typeof standIn>>, forMs: number): Promise<LiveSend[]> {
  const live = s.live as NonNullable<Scenario['live']>;
  const producer = await createProducer({ config: loadConfig({ ...own.env, QUEUE_PREFIX: 'rb' }) });
  const sent = new Map<string, number>();
  const keys = new Map<string, { locationId: string; key: string }>();
  const started = performance.now();
  let i = 0;
  try {
    while (performance.now() - started < forMs - 2 * s.windowMs) {
      const locationId = locations[i % live.locations] as string;
      const altId = `live-${locationId}-${i}`;
      sent.set(altId, Date.now());
      const [r] = await producer.send([{ locationId, type: 'SMS', contactId: `live-c${i}`, message: `live ${i}`, altId }]);
      if (r?.ok !== true) throw new Error('live message refused');
      keys.set(altId, { locationId, key: r.key });
      i += 1;
      await sleep(live.everyMs);
    }
  } finally {
    await producer.close();
  }
  // Every live message arrives within the run's last two windows.
  await sleep(2 * s.windowMs);
  const arrivedAt = new Map<string, number>();
  const backfillAt = new Map<string, number[]>();
  for (const locationId of locations.slice(0, live.locations)) {
    const all = (await stand.admin('GET', `messages?locationId=${locationId}`)) as { altId?: string; receivedAt: number }[];
    for (const m of all) if (m.altId !== undefined && sent.has(m.altId)) arrivedAt.set(m.altId, m.receivedAt);
    backfillAt.set(
      locationId,
      all.filter((m) => m.altId === undefined || !sent.has(m.altId)).map((m) => m.receivedAt),
    );
  }
  return Promise.all(
    [...sent].map(async ([altId, at]): Promise<LiveSend> => {
      const arrived = arrivedAt.get(altId) ?? Date.now() + 60_000;
      const { locationId, key } = keys.get(altId) as { locationId: string; key: string };
      // BullMQ's timestamp (queued) and processedOn (a worker took it).
      const [queuedAt, takenAt] = (await own.client.hmget(`rb:${locationQueueName(locationId)}:${key}`, 'timestamp', 'processedOn')).map(Number);
      const queued = queuedAt ?? at;
      const taken = takenAt ?? queued;
      const passedBy = (backfillAt.get(locationId) ?? []).filter((t) => t > taken && t < arrived).length;
      return { total: arrived - at, parts: [queued - at, taken - queued, arrived - taken], passedBy };
    }),
  );
}

/** Redis's own CPU (user and system) so far, seconds, over every master. */
async function redisCpu(own: OwnRedis): Promise<number> {
  return (await own.info('cpu', 'used_cpu_sys')) + (await own.info('cpu', 'used_cpu_user'));
}

/** Top-level script calls (EVALSHA/EVAL), each one round trip, over every master. */
async function scriptCalls(own: OwnRedis): Promise<number> {
  const calls = await Promise.all(['evalsha', 'eval', 'evalsha_ro', 'eval_ro'].map((c) => own.info('commandstats', `cmdstat_${c}:calls`)));
  return calls.reduce((a, b) => a + b, 0);
}

export async function rateBench(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const only = process.env.BENCH_RATE_SCENARIO;
  const count = Number(process.env.BENCH_RATE_LOCATIONS ?? '20');
  const scenarios: Scenario[] = [
    { name: 'short window', locations: count, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 60 },
    { name: 'shared location', locations: 5, processes: 3, max: 20, windowMs: 2000, seconds: quick ? 20 : 40, rival: 8 },
    { name: 'real limits', locations: count, processes: 3, max: 100, windowMs: 10_000, seconds: quick ? 30 : 60 },
    // A marketplace app back-filling a few locations' history while their live traffic keeps arriving.
    { name: 'live into busy', locations: count, processes: 2, max: 100, windowMs: 10_000, seconds: quick ? 30 : 60, live: { locations: 3, everyMs: 250 } },
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
