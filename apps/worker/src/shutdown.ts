/**
 * Signals: the first SIGINT/SIGTERM stops the process gracefully (the handler has its own
 * deadline), a second one exits at once. A crash path (unhandled rejection) logs and exits 1.
 */
import { coerceError, type Logger } from '@ghl-ingest/queue';

export function onShutdown(handler: (signal: NodeJS.Signals) => Promise<void>, logger: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    handler(signal).then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: coerceError(error) }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: coerceError(reason) }, 'unhandled rejection');
    process.exit(1);
  });
}
