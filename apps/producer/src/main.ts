/** `pnpm ingest ...` */
import { loadDotEnv } from '@ghl-ingest/queue';
import { run } from './cli.ts';

// The command line's own environment takes a `.env` of the working directory; the library never does.
loadDotEnv();
process.exitCode = await run(process.argv.slice(2));
