/**
 * Scale benchmark (`pnpm bench scale`): thousands of locations, side by side in one run, each
 * part on a Redis of its own so that its counters (commands, CPU, clients) are ours alone.
 *
 * - many: 4,000 locations x 5 messages at HighLevel's limits (100 per 10 s), 2 worker processes,
 *   against one: 1 location x 20,000 messages with limits off, same processes and stand-in
 *   latency (20-80 ms): deliveries/s ratio; peak Redis connections; each worker's peak RSS.
 * - Redis CPU per delivered message (INFO CPU delta / deliveries) for both, and for a bare BullMQ
 *   worker posting with got on the one-location run.
 * - idle: 10,000 known locations, all delivered, then 60 s with nothing to do: each worker's CPU
 *   and Redis's commands per second; then what one /metrics scrape costs the reporting worker
 *   with that many locations (time, Redis commands; they go in pipelined batches of 500 locations).
 * - live: 2,000 locations busy with backfill while a sync process sends live messages with
 *   `createProducer().send()` to a location with budget to spare: p50/p99 from send() to arrival.
 *
 * BENCH_QUICK=1 shortens the idle and live parts; BENCH_SCALE_LOCATIONS scales the location counts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProducer } from '@ghl-ingest/producer';
import { Enqueuer, loadConfig, LocationReader, locationQueueName } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData } from '@ghl-ingest/schema';
import { peakRssMb } from '@ghl-ingest/testing';
import { WorkerMetrics } from '../apps/worker/src/metrics.ts';
import { fmt, median, node, ownRedis, type OwnRedis, processCpu, standIn, stopChild, until } from './support.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const SCALE = Number(process.env.BENCH_SCALE_LOCATIONS ?? 1);
const PROCESSES = 2;
const LATENCY = '20-80';

function records(locationId: string, count: number, tag: string, source: 'backfill' | 'live' = 'backfill'): JobData[] {
  return Array.from({ length: count }, (_, i) => {
    const r = normalizeRecord({ locationId, type: 'SMS', contactId: `c${i % 500}`, message: `scale bench ${tag} ${i}`, altId: `${tag}-${locationId}-${i}` });
    if (!r.ok) throw new Error('bad record');
    return toJobData(r.record, source);
  });
}

/** A Redis, a stand-in and token files for `locations`, with HighLevel's limits or none. */
async function setting(locations: string[], limits: boolean) {
  const own = await ownRedis('bench-scale');
  const redis = own.client;
  const dir = mkdtempSync(join(tmpdir(), 'ghl-bench-scale-'));
  const workerTokens = join(dir, 'tokens.json');
  const standTokens = join(dir, 'stand-tokens.json');
  writeFileSync(workerTokens, JSON.stringify(Object.fromEntries(locations.map((l) => [l, `tok-${l}`]))));
  writeFileSync(standTokens, JSON.stringify(Object.fromEntries(locations.map((l) => [`tok-${l}`, l]))));
  const rate = limits ? ['--rate-max', '100', '--rate-window-ms', '10000', '--window', 'rolling'] : ['--rate-max', '1000000000', '--daily-limit', '1000000000'];
  const stand = await standIn(['--tokens', standTokens, ...rate, '--latency', LATENCY, '--no-record-bodies']);
  const env: Record<string, string> = {
    ...own.env,
    QUEUE_PREFIX: 'sb',
    GHL_API_BASE_URL: stand.url,
    GHL_TOKENS_FILE: workerTokens,
    LOG_LEVEL: 'warn',
    ...(limits ? {} : { GHL_RATE_LIMIT_MAX: '1000000', GHL_RATE_LIMIT_WINDOW_MS: '1000', GHL_DAILY_LIMIT: '100000000' }),
  };
  return {
    own,
    redis,
    stand,
    env,
    /** Enqueues as the product does (one Enqueuer, batches of 5,000). */
    async enqueue(jobs: JobData[]) {
      const enqueuer = new Enqueuer(redis, 'sb', 10);
      for (let i = 0; i < jobs.length; i += 5000) await enqueuer.enqueue(jobs.slice(i, i + 5000));
      await enqueuer.close();
    },
    async stop() {
      await stand.stop();
      await own.stop();
    },
  };
}

const redisCpu = async (own: OwnRedis) => (await own.info('cpu', 'used_cpu_user')) + (await own.info('cpu', 'used_cpu_sys'));

interface DeliveryRun {
  rate: number;
  redisCpuUsPerMessage: number;
  peakClients: number;
  peakRssMb: number[];
}

/** Enqueues, starts the workers (ours or bare), and measures until every message arrived. */
async function deliveryRun(locations: string[], perLocation: number, limits: boolean, variant: 'ours' | 'bare'): Promise<DeliveryRun> {
  const s = await setting(locations, limits);
  try {
    const all = locations.flatMap((l) => records(l, perLocation, variant));
    await s.enqueue(all);
    const total = all.length;
    const cpuBefore = await redisCpu(s.own);
    const workers = Array.from({ length: PROCESSES }, () =>
      variant === 'ours'
        ? node('apps/worker/src/main.ts', s.env)
        : node('bench/bare-worker.ts', {
            REDIS_URL: s.own.bareTarget,
            PREFIX: 'sb',
            QUEUE: locationQueueName(locations[0] ?? ''),
            API_URL: s.stand.url,
            TOKEN: `tok-${locations[0] ?? ''}`,
            CONCURRENCY: '32',
          }),
    );
    let peakClients = 0;
    const sampler = setInterval(() => {
      void s.own.info('clients', 'connected_clients').then((n) => (peakClients = Math.max(peakClients, n)));
    }, 250);
    // From the first delivery to the last: process start-up is not delivery.
    await until(async () => (await s.stand.stats()).accepted >= 1, 60_000, 'a first delivery');
    const started = performance.now();
    await until(async () => (await s.stand.stats()).accepted >= total, 600_000, `all ${total} deliveries`);
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const cpu = (await redisCpu(s.own)) - cpuBefore;
    const rss = workers.map((w) => peakRssMb(w.pid ?? 0));
    await Promise.all(workers.map((w) => stopChild(w)));
    return { rate: (total - 1) / seconds, redisCpuUsPerMessage: (cpu * 1e6) / total, peakClients, peakRssMb: rss };
  } finally {
    await s.stop();
  }
}

interface Scrape {
  ms: number;
  commands: number;
}

async function idleRun(count: number, seconds: number): Promise<{ workerCpuPercent: number[]; redisCommandsPerSecond: number; scrapes: Scrape[] }> {
  const locations = Array.from({ length: count }, (_, i) => `idle${i}`);
  const s = await setting(locations, true);
  try {
    await s.enqueue(locations.flatMap((l) => records(l, 1, 'idle')));
    const workers = Array.from({ length: PROCESSES }, () => node('apps/worker/src/main.ts', s.env));
    await until(async () => (await s.stand.stats()).accepted >= count, 600_000, 'every idle location delivered once');
    await sleep(3_000); // the last turns end
    const cpuBefore = workers.map((w) => processCpu(w.pid ?? 0));
    const commandsBefore = await s.own.info('stats', 'total_commands_processed');
    await sleep(seconds * 1000);
    const commands = (await s.own.info('stats', 'total_commands_processed')) - commandsBefore - 1;
    const cpu = workers.map((w, i) => ((processCpu(w.pid ?? 0) - (cpuBefore[i] ?? 0)) / seconds) * 100);
    await Promise.all(workers.map((w) => stopChild(w)));
    // A scrape of the reporting worker's /metrics (a fresh reporter each time, so nothing cached).
    const scrapes: Scrape[] = [];
    for (let i = 0; i < 3; i += 1) {
      const metrics = new WorkerMetrics({
        state: new LocationReader(s.redis, { prefix: 'sb' }),
        redis: s.redis,
        prefix: 'sb',
        deadLetterCount: () => Promise.resolve(0),
      });
      await sleep(200);
      const before = await s.own.info('stats', 'total_commands_processed');
      const t0 = performance.now();
      await metrics.registry.metrics();
      const ms = performance.now() - t0;
      scrapes.push({ ms, commands: (await s.own.info('stats', 'total_commands_processed')) - before - 1 });
      await metrics.close();
    }
    return { workerCpuPercent: cpu, redisCommandsPerSecond: commands / seconds, scrapes };
  } finally {
    await s.stop();
  }
}

async function liveRun(busyCount: number, sends: number): Promise<number[]> {
  const busy = Array.from({ length: busyCount }, (_, i) => `busy${i}`);
  const s = await setting([...busy, 'live'], true);
  try {
    // Each busy location has more queued than the workers can send it during the run.
    await s.enqueue(busy.flatMap((l) => records(l, 60, 'busy')));
    const workers = Array.from({ length: PROCESSES }, () => node('apps/worker/src/main.ts', s.env));
    await until(async () => (await s.stand.stats()).accepted >= busyCount, 120_000, 'the backlog under way');
    const producer = await createProducer({ config: loadConfig(s.env) });
    const latencies: number[] = [];
    const parts: { total: number; queued: number; taken: number }[] = [];
    for (let i = 0; i < sends; i += 1) {
      const sentAt = Date.now();
      const [r] = await producer.send([{ locationId: 'live', type: 'SMS', contactId: `c${i}`, message: `live ${i}`, altId: `live-${i}` }]);
      if (r?.ok !== true) throw new Error('live message refused');
      await until(async () => ((await s.stand.admin('GET', `messages?locationId=live&offset=${i}`)) as unknown[]).length > 0, 30_000, `live message ${i}`);
      const [m] = (await s.stand.admin('GET', `messages?locationId=live&offset=${i}`)) as { receivedAt: number }[];
      const arrived = m?.receivedAt ?? Date.now();
      latencies.push(arrived - sentAt);
      // Where the time went: BullMQ's timestamp (queued) and processedOn (a worker took it).
      const [queuedAt, takenAt] = (await s.redis.hmget(`sb:${locationQueueName('live')}:${r.key}`, 'timestamp', 'processedOn')).map(Number);
      parts.push({ total: arrived - sentAt, queued: (queuedAt ?? sentAt) - sentAt, taken: (takenAt ?? arrived) - (queuedAt ?? sentAt) });
      await sleep(150); // within the live location's budget: 100 per 10 s
    }
    await producer.close();
    await Promise.all(workers.map((w) => stopChild(w)));
    const slowest = [...parts].sort((a, b) => b.total - a.total).slice(0, 5);
    process.stdout.write(
      `  the slowest live sends, ms (send() to queued, queued to taken by a worker, taken to posted): ${slowest
        .map((p) => `${fmt(p.total)} = ${fmt(p.queued)} + ${fmt(p.taken)} + ${fmt(p.total - p.queued - p.taken)}`)
        .join('; ')}\n`,
    );
    return latencies;
  } finally {
    await s.stop();
  }
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))] ?? 0;

export async function scaleBench(): Promise<void> {
  const many = Array.from({ length: Math.round(4000 * SCALE) }, (_, i) => `loc${String(i).padStart(5, '0')}`);
  const one = ['solo'];
  const rounds = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
  const runs: Record<'many' | 'one' | 'bare', DeliveryRun[]> = { many: [], one: [], bare: [] };
  for (let r = 1; r <= rounds; r += 1) {
    // Alternating order, so drift on a shared machine falls on every variant alike.
    const order = r % 2 === 1 ? (['many', 'one', 'bare'] as const) : (['bare', 'one', 'many'] as const);
    for (const v of order) {
      const run = v === 'many' ? await deliveryRun(many, 5, true, 'ours') : await deliveryRun(one, 20_000, false, v === 'one' ? 'ours' : 'bare');
      runs[v].push(run);
      process.stdout.write(
        `  round ${r} ${v.padEnd(4)} ${fmt(run.rate)} deliveries/s, Redis ${fmt(run.redisCpuUsPerMessage)} µs CPU/message, ` +
          `peak ${run.peakClients} clients, worker peak RSS ${run.peakRssMb.map((m) => fmt(m)).join(' / ')} MB\n`,
      );
    }
  }
  const m = (v: 'many' | 'one' | 'bare', f: (r: DeliveryRun) => number) => median(runs[v].map(f));
  const rate = { many: m('many', (r) => r.rate), one: m('one', (r) => r.rate), bare: m('bare', (r) => r.rate) };
  const cpu = { many: m('many', (r) => r.redisCpuUsPerMessage), one: m('one', (r) => r.redisCpuUsPerMessage), bare: m('bare', (r) => r.redisCpuUsPerMessage) };
  process.stdout.write(
    `scale: ${many.length} locations x 5 at 100 per 10 s vs 1 location x 20,000 limits off, ${PROCESSES} workers, latency ${LATENCY} ms, medians of ${rounds}:\n` +
      `  deliveries/s: many ${fmt(rate.many)}, one ${fmt(rate.one)}, ratio ${fmt(rate.many / rate.one, 2)} (goal >= 0.80); bare BullMQ+got on one ${fmt(rate.bare)}\n` +
      `  Redis CPU per delivered message: many ${fmt(cpu.many)} µs, one ${fmt(cpu.one)} µs, bare ${fmt(cpu.bare)} µs; ` +
      `ours/bare ${fmt(cpu.one / cpu.bare, 2)} limits off, ${fmt(cpu.many / cpu.bare, 2)} at HighLevel's limits (goal <= 1.1, issue 21)\n` +
      `  peak Redis connections (all processes): many ${Math.max(...runs.many.map((r) => r.peakClients))}, one ${Math.max(...runs.one.map((r) => r.peakClients))} (goal <= ${200 * PROCESSES})\n` +
      `  worker peak RSS: many ${fmt(Math.max(...runs.many.flatMap((r) => r.peakRssMb)))} MB (goal <= 250)\n`,
  );

  const idleCount = Math.round(10_000 * SCALE);
  const idleSeconds = QUICK ? 20 : 60;
  const idle = await idleRun(idleCount, idleSeconds);
  process.stdout.write(
    `idle: ${idleCount} known idle locations for ${idleSeconds} s: worker CPU ${idle.workerCpuPercent.map((c) => `${fmt(c, 2)} %`).join(' / ')} of a core (goal <= 2 %), ` +
      `Redis ${fmt(idle.redisCommandsPerSecond, 1)} commands/s in all (goal <= 100)\n` +
      `  a /metrics scrape of the reporting worker with ${idleCount} locations: median ${fmt(median(idle.scrapes.map((x) => x.ms)))} ms, ` +
      `${fmt(median(idle.scrapes.map((x) => x.commands)))} Redis commands\n`,
  );

  const busyCount = Math.round(2000 * SCALE);
  const latencies = await liveRun(busyCount, QUICK ? 20 : 120);
  process.stdout.write(
    `live: ${latencies.length} messages sent with createProducer().send() while ${busyCount} locations are busy: ` +
      `send to arrival p50 ${fmt(pct(latencies, 0.5))} ms, p99 ${fmt(pct(latencies, 0.99))} ms, max ${fmt(Math.max(...latencies))} ms (goal p99 <= 250)\n`,
  );
}
