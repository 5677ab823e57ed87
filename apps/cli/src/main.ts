#!/usr/bin/env node
/**
 * `ghl-ingest <command>`: the installed command line. The producer's commands (`import`, `serve`,
 * `status`, `dlq`, `resume`), as `pnpm ingest` runs them, and `worker`, as `pnpm worker` does.
 */
import { packageVersion, run } from '@ghl-ingest/producer/cli';
import { loadDotEnv } from '@ghl-ingest/queue';
import { WORKER_HELP } from '@ghl-ingest/worker/help';

// The command line's own environment takes a `.env` of the working directory; the library never does.
loadDotEnv();
process.exitCode = await run(process.argv.slice(2), process.stdout, {
  name: 'ghl-ingest',
  version: packageVersion(import.meta.url), // this package's (ghl-ingest), not the producer's
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
