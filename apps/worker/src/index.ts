/** What `ghl-ingest worker` (the installed CLI) runs: the same process as `pnpm worker`. */
export { runWorker } from './run.ts';
export { startWorker, type RunningWorker, type WorkerParts } from './worker.ts';
