/**
 * A worker process (`pnpm worker`, `ghl-ingest worker`): takes messages from the queue and posts
 * them to HighLevel until SIGINT/SIGTERM. Settings come from the environment only.
 */
import {
  checkRedis,
  coerceError,
  ConfigError,
  createLogger,
  createRedis,
  IngestError,
  loadConfig,
  onShutdown,
  startTracing,
  type Config,
  type Logger,
} from '@ghl-ingest/queue';
import { WORKER_HELP } from './help.ts';
import { startWorker, type WorkerParts } from './worker.ts';

/**
 * Runs a worker until it is stopped; `--help` prints what it does. Exits the process when it stops.
 * `early`: signals the process received before this was loaded (see main.ts), acted on as soon as
 * the worker's own handling is in place.
 */
export async function runWorker(argv: string[], early: readonly NodeJS.Signals[] = []): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`Usage: pnpm worker\n\n${WORKER_HELP}`);
    return;
  }
  if (argv.length > 0) {
    process.stderr.write(`worker: unexpected argument "${argv[0]}"; settings come from the environment (see --help)\n`);
    process.exit(1);
  }
  await start(early).catch((error: unknown) => {
    process.stderr.write(`worker: ${coerceError(error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}

async function start(early: readonly NodeJS.Signals[]): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`worker: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, 'worker');
  const starting = (async () => {
    await refuseEvictingRedis(config, logger);
    const tracing = await startTracing('ghl-ingest-worker');
    const worker = await startWorker(config, { logger, admin: { port: config.adminPort, explicit: config.adminPortExplicit }, ...testSeams() });
    return { tracing, worker };
  })();
  // Signals are handled from the start: one that arrives while the worker is still starting (an
  // orchestrator stopping a process it has just started) stops it cleanly once it has started.
  onShutdown(async () => {
    const { tracing, worker } = await starting;
    const { forced } = await worker.close(config.shutdownTimeoutMs);
    if (forced) logger.warn('shutdown deadline passed: in-flight jobs cut off, they will be taken again');
    await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: coerceError(error) }, 'could not flush traces'));
  }, logger);
  const first = early[0];
  if (first !== undefined) process.kill(process.pid, first);
  let running;
  try {
    running = (await starting).worker;
  } catch (error) {
    if (error instanceof ConfigError || (error instanceof IngestError && error.code === 'CONFIG')) {
      process.stderr.write(`worker: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  process.on('SIGHUP', () => void running.reloadTokens());
}

/** Stops (EvictingRedis, exit 1) on a Redis that may evict; warns on one that keeps nothing on disk. */
async function refuseEvictingRedis(config: Config, logger: Logger): Promise<void> {
  // A worker's connection: like the worker, it waits for a Redis that is not up yet.
  const redis = createRedis(config, 'worker', `${config.queuePrefix}:worker-check`);
  redis.on('error', () => undefined);
  try {
    await checkRedis(redis, (fields, message) => logger.warn(fields, message));
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * GHL_TEST_CRASH_AFTER_LEDGER_WRITE=1: the process SIGKILLs itself right after its first ledger
 * write, before the job completes: how the tests prove the ledger stops a second post.
 */
function testSeams(): Pick<WorkerParts, 'afterLedgerWrite'> {
  if (process.env.GHL_TEST_CRASH_AFTER_LEDGER_WRITE !== '1') return {};
  return {
    afterLedgerWrite: () => {
      process.kill(process.pid, 'SIGKILL');
      return new Promise(() => undefined);
    },
  };
}
