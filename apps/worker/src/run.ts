/**
 * A worker process (`pnpm worker`, `ghl-ingest worker`): takes messages from the queue and posts
 * them to HighLevel until SIGINT/SIGTERM. Settings come from the environment only.
 */
import { coerceError, ConfigError, createLogger, IngestError, loadConfig } from '@ghl-ingest/queue';
import { onShutdown } from './shutdown.ts';
import { startWorker, type WorkerParts } from './worker.ts';

export const WORKER_HELP = `Takes messages from the queue and posts them to HighLevel, each location within its
rate budget, until SIGINT or SIGTERM (a second signal exits at once). Run several for more
throughput, on one host or many. Settings come from the environment (and .env), among them:

  REDIS_URL            redis://127.0.0.1:6379
  QUEUE_PREFIX         ghl
  GHL_API_BASE_URL     https://services.leadconnectorhq.com
  GHL_TOKEN            one token for every location
  GHL_TOKENS_FILE      JSON {"<locationId>": "<token>"} (SIGHUP reloads it)
  WORKER_CONCURRENCY   in-flight requests (default: chosen by the worker)
  ADMIN_PORT           /metrics, /healthz, /readyz, dashboard (default 9464, else the next free port)
  LOG_LEVEL            info

Every setting and its default: the README and .env.example.
`;

/** Runs a worker until it is stopped; `--help` prints what it does. Exits the process when it stops. */
export async function runWorker(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`Usage: pnpm worker\n\n${WORKER_HELP}`);
    return;
  }
  if (argv.length > 0) {
    process.stderr.write(`worker: unexpected argument "${argv[0]}"; settings come from the environment (see --help)\n`);
    process.exit(1);
  }
  await start().catch((error: unknown) => {
    process.stderr.write(`worker: ${coerceError(error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}

async function start(): Promise<void> {
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
  let worker;
  try {
    worker = await startWorker(config, { logger, admin: { port: config.adminPort, explicit: config.adminPortExplicit }, ...testSeams() });
  } catch (error) {
    if (error instanceof ConfigError || (error instanceof IngestError && error.code === 'CONFIG')) {
      process.stderr.write(`worker: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const running = worker;
  process.on('SIGHUP', () => void running.reloadTokens());
  onShutdown(async () => {
    const { forced } = await running.close(config.shutdownTimeoutMs);
    if (forced) logger.warn('shutdown deadline passed: in-flight jobs cut off, they will be taken again');
  }, logger);
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

