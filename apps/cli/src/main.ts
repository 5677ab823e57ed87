#!/usr/bin/env node
/**
 * `ghl-ingest <command>`: the installed command line. The producer's commands (`import`, `serve`,
 * `status`, `dlq`, `resume`), as `pnpm ingest` runs them, and `worker`, as `pnpm worker` does.
 */
import { run } from '@ghl-ingest/producer/cli';
import { WORKER_HELP } from '@ghl-ingest/worker/help';

process.exitCode = await run(process.argv.slice(2), process.stdout, {
  name: 'ghl-ingest',
  extend: (program) => {
    program
      .command('worker')
      .description('a worker process: posts queued messages to HighLevel until SIGINT/SIGTERM')
      .addHelpText('after', `\n${WORKER_HELP}`)
      .action(async () => {
        // Loaded only here: the producer's commands do not carry the worker.
        const { runWorker } = await import('@ghl-ingest/worker');
        await runWorker([]);
      });
  },
});
