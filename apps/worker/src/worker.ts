/**
 * A worker process's parts, put together: used by `main.ts` and by tests that run a worker
 * in-process. Everything it opens, `close()` closes.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import {
  annotateActiveSpan,
  budgetFor,
  coerceError,
  countImportOutcome,
  createRedis,
  ContactDirectory,
  DeadLetters,
  FileStore,
  flushLogs,
  locationOfQueue,
  lookupsPerMinute,
  oauthAppClient,
  OAuthTokens,
  openOAuthStore,
  readBudgetOverrides,
  traceConsume,
  tracingRequested,
  type Config,
  type Logger,
  type RedisClient,
  WorkerLocations,
} from '@ghl-ingest/queue';
import type { Job } from 'bullmq';
import type { BackoffOptions } from './backoff.ts';
import { Delivery, type DeliveryEvent } from './deliver.ts';
import { parsePrivateHosts, Preparer, type PrivateHosts } from './prepare.ts';
import { startAdminServer, type AdminServer } from './admin-server.ts';
import { HighLevelClient } from './http-client.ts';
import { WorkerMetrics } from './metrics.ts';
import { Dispatcher } from './dispatcher.ts';
import { createNotifications } from './notify.ts';
import type { NotifyPolicy } from './notify-policy.ts';
import { Semaphore } from './semaphore.ts';
import { TokenStore } from './tokens.ts';
import { Credentials } from './credentials.ts';
import type { LookupResult } from './reconcile.ts';
import { LocationPaused, LocationWait, LockLost, RetryLater, WorkerStopping } from './signals.ts';

/** In-flight requests per process when WORKER_CONCURRENCY is not set. */
export const DEFAULT_CONCURRENCY = 32;

export interface WorkerParts {
  logger: Logger;
  onEvent?: (event: DeliveryEvent) => void;
  afterLedgerWrite?: (job: Job) => Promise<void>;
  backoff?: BackoffOptions;
  /** How long a process keeps a busy location before others get their turn (ms). Default 1,000. */
  sliceMs?: number;
  /** Serve /metrics, /healthz, /readyz and the dashboard (ADMIN_PORT); undefined: no admin server. */
  admin?: { port: number; explicit: boolean };
  /** Over the notification sender's defaults (NOTIFY_WEBHOOK_URL; notify-policy.ts): tests make it quick. */
  notify?: Partial<NotifyPolicy>;
}

export interface RunningWorker {
  dispatcher: Dispatcher;
  state: WorkerLocations;
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
  const connection = createRedis(config, 'worker', `${config.queuePrefix}:worker`);
  connection.on('error', (error: unknown) => log.warn({ err: coerceError(error) }, 'redis connection error'));
  const deadLetters = new DeadLetters(connection, config.queuePrefix);
  const client = new HighLevelClient({ baseUrl: config.apiBaseUrl, timeoutMs: config.httpTimeoutMs, maxSockets: concurrency });
  const budget = (locationId: string) => budgetFor(locationId, config.rateLimit, overrides);
  const state = new WorkerLocations(connection, {
    prefix: config.queuePrefix,
    budget,
    resetOffsetMs: config.dailyResetOffsetMs,
    limiter: {
      budget,
      // A request may still reach HighLevel until its timeout: its slot counts at least that long.
      inflightMs: config.httpTimeoutMs + 1_000,
      // Reservations are bounded by concurrency; this only stops a sleep of minutes.
      horizonMs: (b) => Math.max(2 * b.windowMs, 30_000),
    },
    ledgerTtlMs: config.ledgerTtlMs,
  });
  // Redis restarted or failed over, perhaps losing its last writes: this process's recent ledger
  // entries go back before any message is checked against the ledger again.
  const stopWatching = state.watchForLoss((report) => {
    if (report.notRestored > 0)
      log.warn(report, 'Redis came back as another server: workers alive before it did not write their ledger entries back in time; presumed gone');
    if (report.written > 0)
      log.warn(report, 'Redis came back without ledger entries this process wrote lately: written back, those messages will not be posted again');
    else log.info(report, 'Redis came back as another server; the ledger had every entry this process wrote lately');
  });
  // Locations paused or parked and dead letters, into the shared outbox; sent by the worker
  // holding its lease (NOTIFY_WEBHOOK_URL). Counted once `metrics` exists (the sender starts last).
  const notifications = createNotifications(config, {
    redis: connection,
    logger: log,
    ...(parts.notify === undefined ? {} : { policy: parts.notify }),
    onResult: (result, events) => metrics.notified(result, events),
  });
  const notify = notifications === undefined ? {} : { notify: notifications.record };
  const subscriber = createRedis(config, 'worker', `${config.queuePrefix}:worker-subscriber`);
  subscriber.on('error', (error: unknown) => log.warn({ err: coerceError(error) }, 'subscriber connection error'));
  // The dispatcher runs the delivery: built in this order, `delivery` is defined before the
  // dispatcher takes a job (start() below).
  const dispatcher: Dispatcher = new Dispatcher({
    connection,
    subscriber,
    prefix: config.queuePrefix,
    state,
    budgets: state.budgets,
    processor: tracingRequested()
      ? (job, lockLost, turn) => traceConsume(job, traceOptions(job), () => delivery.process(job, lockLost, turn))
      : (job, lockLost, turn) => delivery.process(job, lockLost, turn),
    deadLetters,
    // Active jobs: twice the requests in flight, as some sleep on reserved slots.
    maxActive: 2 * concurrency,
    // A location's active jobs here: its burst budget, so one process alone can keep the next
    // window reserved, within the process's bound.
    perLocation: (locationId) => Math.max(1, Math.min(budget(locationId).max, 2 * concurrency)),
    lockMs: config.workerLockMs,
    logger: log,
    ...(parts.sliceMs === undefined ? {} : { sliceMs: parts.sliceMs }),
    ...(parts.backoff === undefined ? {} : { backoff: parts.backoff }),
    onServe: (locationId) => admin?.addLocation(locationId),
    ...notify,
  });
  const metrics = new WorkerMetrics({ state, redis: connection, prefix: config.queuePrefix, deadLetterCount: () => deadLetters.queue.getWaitingCount() });
  let admin: AdminServer | undefined;
  const delivery = new Delivery({
    deadLetters,
    credentials: new Credentials(tokens, oauthTokens(config, connection, log, metrics)),
    client,
    state,
    inFlight: new Semaphore(concurrency),
    logger: log,
    maxAttempts: config.maxAttempts,
    lockMs: config.workerLockMs,
    onRequest: (kind) => metrics.requested(kind),
    preparer: new Preparer({
      client,
      contacts: new ContactDirectory(connection, config.queuePrefix),
      files: new FileStore(connection, config.queuePrefix),
      privateHosts: readPrivateHosts(config.attachmentHeadersFile),
      onRequest: (kind) => metrics.requested(kind),
      onContact: (locationId, created) => {
        metrics.contact(created);
        void state.countContact(locationId, created).catch(() => undefined);
      },
      onUpload: (locationId, files, bytes) => {
        metrics.uploaded(bytes);
        void state.countUploads(locationId, files).catch(() => undefined);
      },
    }),
    onEvent: (event) => {
      metrics.record(event);
      if (event.status !== undefined) annotateActiveSpan({ 'http.response.status_code': event.status, 'ghl.outcome': event.outcome });
      countOutcome(event);
      parts.onEvent?.(event);
    },
    ...(parts.afterLedgerWrite === undefined ? {} : { afterLedgerWrite: parts.afterLedgerWrite }),
    ...notify,
    // Reads before posting again after an unknown outcome: at most 3 pages of 100 each, and as
    // many lookups a minute as the location's rate and its share of unknown outcomes call for
    // (lookupsPerMinute: about 2 requests each, at most a quarter of its requests).
    ...(config.reconcile
      ? {
          reconcile: { pages: 3, perMinute: (id: string, share: number) => lookupsPerMinute(budget(id), share), settleMs: config.httpTimeoutMs + 1_000 },
          onLookup: (result: LookupResult) => metrics.lookedUp(result),
        }
      : {}),
  });
  // Outcomes per import (for `import --wait`) and dead letters per location (for `status`): off
  // the hot path, not awaited. Deliveries and skips are counted per location with the ledger's
  // write or read (ledger-gate.ts).
  const countOutcome = (event: DeliveryEvent) => {
    const failed = (error: unknown) => log.warn({ err: coerceError(error) }, 'could not count an outcome');
    if (event.outcome === 'dead-lettered') state.countDead(event.locationId).catch(failed);
    const field = event.outcome === 'dead-lettered' ? 'dead' : event.outcome === 'delivered' || event.outcome === 'skipped' ? 'delivered' : undefined;
    if (field !== undefined && event.importId !== undefined) countImportOutcome(connection, config.queuePrefix, event.importId, field).catch(failed);
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
      if ((await state.hold(id))?.state === 'paused') {
        await state.resume(id);
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

  if (parts.admin !== undefined) {
    admin = await startAdminServer({ config, redis: connection, metrics, logger: log, port: parts.admin.port, explicitPort: parts.admin.explicit });
  }
  log.info({ concurrency, prefix: config.queuePrefix, api: config.apiBaseUrl, admin: admin?.url }, 'worker started');
  // Logs are written in 4 KB batches: the first line (the admin URL) is shown now, and a quiet
  // worker's lines within a second.
  flushLogs(log);
  const flusher = setInterval(() => flushLogs(log), 1_000);
  flusher.unref();
  // Redis may lose acknowledged writes (a restart with `everysec`, a cluster failover): every 10 s,
  // and now, check whether it changed, and if so put back what the shared structures lost.
  let repairing: Promise<void> = Promise.resolve();
  const stopRepair = new AbortController();
  const repair = () => {
    repairing = state.repairAfterLoss(stopRepair.signal).then(
      (report) => {
        if (report !== undefined) log.info(report, 'Redis changed (restart or failover): locations with jobs checked against the ready set');
      },
      (error: unknown) => log.warn({ err: coerceError(error) }, 'could not check the ready set after a Redis change; trying again in 10 s'),
    );
  };
  repair();
  const repairer = setInterval(repair, 10_000);
  repairer.unref();
  await dispatcher.start();
  notifications?.start();

  return {
    dispatcher,
    state,
    admin,
    reloadTokens,
    async close(deadlineMs = config.shutdownTimeoutMs) {
      if (file !== undefined) unwatchFile(file);
      clearInterval(flusher);
      clearInterval(repairer);
      stopRepair.abort();
      delivery.stop();
      const result = await dispatcher.close(deadlineMs);
      // A delivery whose ledger entry Redis refused is retried until it lands: not left behind.
      const writing = state.ledgerWrites();
      const waiting = setTimeout(() => log.warn('waiting for Redis to take ledger entries of messages HighLevel holds (a second signal exits anyway)'), 1_000);
      const pending = await writing;
      clearTimeout(waiting);
      if (pending > 0) log.info({ written: pending }, 'ledger entries written late, before stopping');
      await repairing;
      await notifications?.close();
      await admin?.close();
      await metrics.close();
      await deadLetters.close();
      stopWatching();
      client.close();
      await connection.quit().catch(() => connection.disconnect());
      return result;
    },
  };
}

/**
 * As a marketplace app (GHL_CLIENT_ID, GHL_CLIENT_SECRET, GHL_TOKEN_KEY): OAuth tokens from the
 * shared encrypted store, refreshed by one process at a time. A bad GHL_TOKEN_KEY stops the worker.
 */
function oauthTokens(config: Config, redis: RedisClient, log: Logger, metrics: WorkerMetrics): OAuthTokens | undefined {
  const client = oauthAppClient(config);
  const store = client === undefined ? undefined : openOAuthStore(redis, config);
  if (client === undefined || store === undefined) return undefined;
  return new OAuthTokens({
    store,
    client,
    // Longer than a refresh can take (its timeout), so a living holder never loses it.
    leaseMs: 2 * config.httpTimeoutMs + 5_000,
    logger: log,
    onRefresh: (answer) => metrics.refreshed(answer),
  });
}

/** A delivery attempt's span: its location; the message id HighLevel gave; waits and stops are not errors. */
function traceOptions(job: Job): Parameters<typeof traceConsume<{ messageId: string; skipped?: true }>>[1] {
  return {
    attributes: { 'ghl.location_id': locationOfQueue(job.queueName) ?? '' },
    describe: (result) => ({ 'ghl.message_id': result.messageId, 'ghl.skipped': result.skipped === true }),
    expected: (error) =>
      error instanceof LocationWait ||
      error instanceof LocationPaused ||
      error instanceof WorkerStopping ||
      error instanceof LockLost ||
      error instanceof RetryLater,
  };
}

/** GHL_ATTACHMENT_HEADERS_FILE, read once at start; a file that cannot be read or parsed stops the worker with the reason (never its content: it holds secrets). */
function readPrivateHosts(file: string | undefined): PrivateHosts {
  if (file === undefined) return new Map();
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    // The cause is left out on purpose: a JSON error quotes the file, and the file holds secrets.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(
      `GHL_ATTACHMENT_HEADERS_FILE ${file}: ${error instanceof SyntaxError ? 'not JSON' : ((error as NodeJS.ErrnoException).code ?? 'cannot be read')}`,
    );
  }
  return parsePrivateHosts(json, `GHL_ATTACHMENT_HEADERS_FILE ${file}`);
}
