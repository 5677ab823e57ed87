/** `pnpm worker`: one worker process. Run several for more throughput. */
import { coerceError, ConfigError, createLogger, IngestError, loadConfig } from '@ghl-ingest/queue';
import { onShutdown } from './shutdown.ts';
import { startWorker, type WorkerParts } from './worker.ts';

async function main(): Promise<void> {
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

main().catch((error: unknown) => {
  process.stderr.write(`worker: ${coerceError(error).stack ?? String(error)}\n`);
  process.exit(1);
});
