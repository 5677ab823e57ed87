/**
 * A worker process's parts, put together: used by `main.ts` and by tests that run a worker
 * in-process. Everything it opens, `close()` closes.
 */
import { unwatchFile, watchFile } from 'node:fs';
import {
  budgetFor,
  coerceError,
  createRedis,
  DeadLetters,
  keysFor,
  RateLimiter,
  readBudgetOverrides,
  readHold,
  type Config,
  type Logger,
} from '@ghl-ingest/queue';
import type { Job } from 'bullmq';
import type { BackoffOptions } from './backoff.ts';
import { Delivery, type DeliveryEvent } from './deliver.ts';
import { startAdminServer, type AdminServer } from './admin-server.ts';
import { HighLevelClient } from './http-client.ts';
import { WorkerMetrics } from './metrics.ts';
import { LocationWorkers } from './location-workers.ts';
import { Semaphore } from './semaphore.ts';
import { TokenStore } from './tokens.ts';

/** In-flight requests per process when WORKER_CONCURRENCY is not set. */
export const DEFAULT_CONCURRENCY = 32;

export interface WorkerParts {
  logger: Logger;
  onEvent?: (event: DeliveryEvent) => void;
  afterLedgerWrite?: (job: Job) => Promise<void>;
  scanIntervalMs?: number;
  backoff?: BackoffOptions;
  /** Serve /metrics, /healthz, /readyz and the dashboard on this port (ADMIN_PORT); undefined: no admin server. */
  adminPort?: number;
}

export interface RunningWorker {
  locations: LocationWorkers;
  admin: AdminServer | undefined;
  /** Re-reads GHL_TOKENS_FILE (resuming locations paused for credentials whose token changed) and GHL_RATE_LIMITS_FILE. */
  reloadTokens(): Promise<string[]>;
  close(deadlineMs?: number): Promise<{ forced: boolean }>;
}

export async function startWorker(config: Config, parts: WorkerParts): Promise<RunningWorker> {
  const log = parts.logger;
  const tokens = new TokenStore({ file: config.tokensFile, token: config.token });
  let overrides = readBudgetOverrides(config.rateLimitsFile);
  const concurrency = config.workerConcurrency ?? DEFAULT_CONCURRENCY;
  const connection = createRedis(config.redisUrl, 'worker', `${config.queuePrefix}:worker`);
  connection.on('error', (error: unknown) => log.warn({ err: coerceError(error) }, 'redis connection error'));
  const deadLetters = new DeadLetters(connection, config.queuePrefix);
  const client = new HighLevelClient({ baseUrl: config.apiBaseUrl, timeoutMs: config.httpTimeoutMs, maxSockets: concurrency });
  const limiter = new RateLimiter(connection, {
    prefix: config.queuePrefix,
    budget: (locationId) => budgetFor(locationId, config.rateLimit, overrides),
    // A request may still reach HighLevel until its timeout: its slot counts at least that long.
    inflightMs: config.httpTimeoutMs + 1_000,
    resetOffsetMs: config.dailyResetOffsetMs,
    // Reservations are bounded by concurrency; this only stops a sleep of minutes.
    horizonMs: (b) => Math.max(2 * b.windowMs, 30_000),
    ledgerTtlMs: config.ledgerTtlMs,
  });
  // The workers run the delivery, and the delivery steers the workers' queues: built in this order,
  // `delivery` is defined before any worker can take a job (start() below).
  const locations: LocationWorkers = new LocationWorkers({
    connection,
    redisUrl: config.redisUrl,
    prefix: config.queuePrefix,
    processor: (job) => delivery.process(job),
    deadLetters,
    // Active jobs of a location: its burst budget, so one process alone can keep the next window
    // reserved (most of them sleep on reservations; requests in flight are bounded by `inFlight`),
    // but no more than twice the in-flight bound: each active job costs lock renewals.
    concurrency: (locationId) => Math.max(1, Math.min(budgetFor(locationId, config.rateLimit, overrides).max, 2 * concurrency)),
    lockMs: config.workerLockMs,
    logger: log,
    ...(parts.scanIntervalMs === undefined ? {} : { scanIntervalMs: parts.scanIntervalMs }),
    ...(parts.backoff === undefined ? {} : { backoff: parts.backoff }),
    onServe: (_locationId, queue) => admin?.addQueue(queue),
  });
  const metrics = new WorkerMetrics(() => locations.queues, connection, config.queuePrefix);
  let admin: AdminServer | undefined;
  const delivery = new Delivery({
    deadLetters,
    tokens,
    client,
    limiter,
    control: locations,
    inFlight: new Semaphore(concurrency),
    logger: log,
    maxAttempts: config.maxAttempts,
    onEvent: (event) => {
      metrics.record(event);
      countOutcome(event);
      parts.onEvent?.(event);
    },
    ...(parts.afterLedgerWrite === undefined ? {} : { afterLedgerWrite: parts.afterLedgerWrite }),
  });
  const served = locations;
  // Outcomes per location (for `status`) and per import (for `import --wait`): off the hot path,
  // one pipelined round trip, not awaited.
  const keys = keysFor(config.queuePrefix);
  const countOutcome = (event: DeliveryEvent) => {
    const field =
      event.outcome === 'dead-lettered' ? 'dead' : event.outcome === 'delivered' ? 'delivered' : event.outcome === 'skipped' ? 'skipped' : undefined;
    if (field === undefined) return;
    const p = connection.pipeline().hincrby(keys.stats(event.locationId), field, 1);
    if (event.importId !== undefined) p.hincrby(keys.importRecord(event.importId), field === 'skipped' ? 'delivered' : field, 1);
    p.exec().catch((error: unknown) => log.warn({ err: coerceError(error) }, 'could not count an outcome'));
  };
  const reloadTokens = async (): Promise<string[]> => {
    let changed: string[];
    try {
      changed = tokens.reload();
      overrides = readBudgetOverrides(config.rateLimitsFile);
    } catch (error) {
      log.error({ err: coerceError(error) }, 'reload failed; keeping the tokens and limits in use');
      return [];
    }
    const resumed: string[] = [];
    for (const id of changed) {
      const hold = await readHold(connection, config.queuePrefix, id);
      if (hold?.state === 'paused') {
        await served.resume(id);
        resumed.push(id);
      }
    }
    log.info({ changed: changed.length, resumed }, 'tokens reloaded');
    return resumed;
  };
  const file = tokens.file;
  if (file !== undefined) {
    watchFile(file, { interval: 2_000, persistent: false }, () => {
      void reloadTokens();
    });
  }

  if (parts.adminPort !== undefined) {
    admin = await startAdminServer({ config, redis: connection, metrics, logger: log, queues: [...served.queues.values()], port: parts.adminPort });
  }
  await served.start();
  log.info({ concurrency, prefix: config.queuePrefix, api: config.apiBaseUrl, admin: admin?.url }, 'worker started');

  return {
    locations: served,
    admin,
    reloadTokens,
    async close(deadlineMs = config.shutdownTimeoutMs) {
      if (file !== undefined) unwatchFile(file);
      delivery.stop();
      const result = await served.close(deadlineMs);
      await admin?.close();
      await deadLetters.close();
      client.close();
      await connection.quit().catch(() => connection.disconnect());
      return result;
    },
  };
}
