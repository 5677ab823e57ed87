/** `pnpm worker`: one worker process. Run several for more throughput. */
import { runWorker } from './run.ts';

await runWorker(process.argv.slice(2));
