/**
 * How a long-running process (the worker, `ingest serve`) stops on signals: the first
 * SIGINT/SIGTERM stops it gracefully (the handler has its own deadline), a second one exits at
 * once. A crash path (unhandled rejection) logs and exits 1.
 */
import { coerceError } from './errors.ts';
import { flushLogs, type Logger } from './logger.ts';

export function onShutdown(handler: (signal: NodeJS.Signals) => Promise<void>, logger: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    handler(signal).then(
      () => {
        logger.info('stopped');
        exit(0);
      },
      (error: unknown) => {
        logger.error({ err: coerceError(error) }, 'stopping failed');
        exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: coerceError(reason) }, 'unhandled rejection');
    exit(1);
  });
  const exit = (code: number): never => {
    flushLogs(logger);
    process.exit(code);
  };
}
