/**
 * Delivery benchmark: deliveries per second of our worker against a bare BullMQ worker posting
 * with got to the same stand-in, with rate limits off and the stand-in answering at once. Runs
 * alternate (ours, bare, ours, bare...) in one session, and the figure is the ratio of medians:
 * the machine is shared and noisy, so absolute rates mean little and side-by-side ratios a lot.
 * A third variant runs our worker on a local Redis Cluster (3 masters, 3 replicas, no AOF, as the single Redis) with
 * REDIS_CLUSTER_NODES: what cluster mode costs against one Redis (the one location lives on one
 * master, so this is the client's cost, not scale-out). BENCH_DELIVERY_CLUSTER=0 leaves it out.
 */
import { createRedis, Enqueuer, everyPrimary, locationQueueName, scanEvery, type RedisClient } from '@ghl-ingest/queue';
import { RedisCluster } from '@ghl-ingest/testing';
import { normalizeRecord, toJobData, type JobData } from '@ghl-ingest/schema';
import { benchRedis, fmt, median, node, processCpu, standIn, stopChild, until, type Stand } from './support.ts';

const MESSAGES = Number(process.env.BENCH_DELIVERY_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const WARMUP = Math.floor(MESSAGES * 0.05);
const TOKEN = 'bench-token';
const WITH_CLUSTER = process.env.BENCH_DELIVERY_CLUSTER !== '0';

type Variant = 'ours' | 'bare' | 'cluster';

function jobs(run: string): JobData[] {
  return Array.from({ length: MESSAGES }, (_, i) => {
    const r = normalizeRecord({
      locationId: 'bench',
      type: 'SMS',
      contactId: `contact-${i % 5000}`,
      message: `Hi, this is message ${i} of the benchmark: a typical SMS of around a hundred and sixty characters, give or take.`,
      altId: `${run}-${i}`,
      date: 1_714_564_800 + i,
    });
    if (!r.ok) throw new Error('bad benchmark record');
    return toJobData(r.record, 'backfill');
  });
}

/** Redis's CPU seconds so far (user + sys), over every master of a cluster. */
async function redisCpu(redis: RedisClient): Promise<number> {
  let total = 0;
  for (const node of everyPrimary(redis)) {
    const info = await node.info('cpu');
    const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    total += field('used_cpu_user') + field('used_cpu_sys');
  }
  return total;
}

/**
 * Delivers MESSAGES with one worker process; returns deliveries per second after warm-up, Redis's
 * CPU per delivered message (µs) over the whole delivery, and the worker's CPU per message after
 * warm-up (µs): on this shared 2-core host the worker is CPU-bound, so its CPU per message says
 * what the rate's ratio says with less noise.
 */
async function measure(
  variant: Variant,
  run: number,
  redisUrl: string,
  stand: Stand,
  clusterNodes?: string,
): Promise<{ rate: number; cpuUs: number; workerUs: number }> {
  const prefix = `bench-d${run}-${variant}`;
  const redis = createRedis({ redisUrl, redisClusterNodes: variant === 'cluster' ? clusterNodes?.split(',') : undefined }, 'worker', `${prefix}:bench`);
  if (variant === 'cluster') await until(async () => Promise.resolve(redis.status === 'ready'), 10_000, 'the cluster client');
  const enqueuer = new Enqueuer(redis, prefix, 10);
  const all = jobs(prefix);
  for (let i = 0; i < MESSAGES; i += 1000) await enqueuer.enqueue(all.slice(i, i + 1000));
  await enqueuer.close();
  await stand.admin('POST', 'reset');
  const cpuBefore = await redisCpu(redis);

  const child =
    variant !== 'bare'
      ? node('apps/worker/src/main.ts', {
          REDIS_URL: redisUrl,
          ...(variant === 'cluster' ? { REDIS_CLUSTER_NODES: clusterNodes ?? '' } : {}),
          QUEUE_PREFIX: prefix,
          GHL_API_BASE_URL: stand.url,
          GHL_TOKEN: TOKEN,
          WORKER_CONCURRENCY: String(CONCURRENCY),
          // Rate limits off, as for the stand-in: this measures delivery alone.
          GHL_RATE_LIMIT_MAX: '1000000',
          GHL_RATE_LIMIT_WINDOW_MS: '1000',
          GHL_DAILY_LIMIT: '100000000',
          LOG_LEVEL: 'info',
          ADMIN_PORT: '0',
        })
      : node('bench/bare-worker.ts', {
          REDIS_URL: redisUrl,
          PREFIX: prefix,
          QUEUE: locationQueueName('bench'),
          API_URL: stand.url,
          TOKEN,
          CONCURRENCY: String(CONCURRENCY),
        });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`the ${variant} worker exited with ${String(code)} before the run ended`))),
  );
  await Promise.race([until(async () => (await stand.stats()).accepted >= WARMUP, 120_000, 'warm-up'), exited]);
  const started = performance.now();
  const workerBefore = processCpu(child.pid ?? 0);
  await Promise.race([until(async () => (await stand.stats()).accepted >= MESSAGES, 600_000, 'all deliveries'), exited]);
  const workerUs = ((processCpu(child.pid ?? 0) - workerBefore) * 1e6) / (MESSAGES - WARMUP);
  exited.catch(() => undefined);
  const seconds = (performance.now() - started) / 1000;
  const cpuUs = (((await redisCpu(redis)) - cpuBefore) * 1e6) / MESSAGES;
  await stopChild(child);
  await deletePrefix(redis, prefix);
  await redis.quit();
  return { rate: (MESSAGES - WARMUP) / seconds, cpuUs, workerUs };
}

async function deletePrefix(redis: RedisClient, prefix: string): Promise<void> {
  // One key per call: on a cluster the keys of one scan span slots.
  for await (const keys of scanEvery(redis, `${prefix}:*`)) await Promise.all(keys.map((k) => redis.unlink(k)));
}

export async function deliveryBench(): Promise<void> {
  const redis = await benchRedis();
  const stand = await standIn(['--rate-max', '1000000000', '--daily-limit', '1000000000', '--no-record-bodies']);
  const cluster = WITH_CLUSTER ? await RedisCluster.start({ appendfsync: 'off' }) : undefined;
  const rates: Record<Variant, number[]> = { ours: [], bare: [], cluster: [] };
  const cpu: Record<Variant, number[]> = { ours: [], bare: [], cluster: [] };
  const worker: Record<Variant, number[]> = { ours: [], bare: [], cluster: [] };
  try {
    const variants: Variant[] = cluster === undefined ? ['ours', 'bare'] : ['ours', 'bare', 'cluster'];
    for (let run = 1; run <= ROUNDS; run += 1) {
      for (const variant of run % 2 === 1 ? variants : [...variants].reverse()) {
        const { rate, cpuUs, workerUs } = await measure(variant, run, redis.url, stand, cluster?.nodesSetting);
        rates[variant].push(rate);
        cpu[variant].push(cpuUs);
        worker[variant].push(workerUs);
        process.stdout.write(
          `  round ${run} ${variant.padEnd(4)} ${fmt(rate)} deliveries/s, Redis ${fmt(cpuUs)} µs CPU per message, worker ${fmt(workerUs)} µs\n`,
        );
      }
    }
  } finally {
    await stand.stop();
    await redis.stop();
    await cluster?.stop();
  }
  const ours = median(rates.ours);
  const bare = median(rates.bare);
  process.stdout.write(
    `delivery: ${MESSAGES} messages, concurrency ${CONCURRENCY}, ${ROUNDS} rounds, medians: ` +
      `ours ${fmt(ours)}/s, bare BullMQ+got ${fmt(bare)}/s, ratio ${fmt(ours / bare, 2)} (goal >= 0.95); ` +
      `Redis CPU per message ours ${fmt(median(cpu.ours))} µs, bare ${fmt(median(cpu.bare))} µs, ratio ${fmt(median(cpu.ours) / median(cpu.bare), 2)} (goal <= 1.1); ` +
      `worker CPU per message ours ${fmt(median(worker.ours))} µs, bare ${fmt(median(worker.bare))} µs, ratio ${fmt(median(worker.ours) / median(worker.bare), 2)}\n`,
  );
  if (cluster !== undefined) {
    process.stdout.write(
      `delivery on a Redis Cluster (3 masters + 3 replicas) / one Redis, neither with AOF, our worker: ${fmt(median(rates.cluster))}/s vs ${fmt(ours)}/s, ` +
        `ratio ${fmt(median(rates.cluster) / ours, 2)}; Redis CPU per message (all masters) ${fmt(median(cpu.cluster))} µs vs ${fmt(median(cpu.ours))} µs\n`,
    );
  }
}
