/** `pnpm worker`: one worker process. Run several for more throughput. */

// A signal while the modules are still loading (an orchestrator stopping a process it has just
// started; on a busy host that takes a second or two) would kill the process outright: it is
// noted here instead, and the worker's own handling, set up before it connects to anything, acts
// on it. The listener stays: a signal caught but not yet dispatched is never lost to a removal.
const early: NodeJS.Signals[] = [];
const note = (signal: NodeJS.Signals) => early.push(signal);
process.on('SIGTERM', note).on('SIGINT', note);
const [{ runWorker }, { loadDotEnv }] = await Promise.all([import('./run.ts'), import('@ghl-ingest/queue')]);

// The command line's own environment takes a `.env` of the working directory; the library never does.
loadDotEnv();
await runWorker(process.argv.slice(2), early);
