/**
 * Optional OpenTelemetry tracing, from enqueue to delivery. Off unless the standard OTEL_*
 * variables ask for it (an OTLP endpoint, or OTEL_TRACES_EXPORTER other than `none`; never with
 * OTEL_SDK_DISABLED=true): then a process starts the OpenTelemetry SDK (configured by those same
 * variables: endpoint, protocol, headers, sampler, OTEL_SERVICE_NAME), BullMQ's own telemetry
 * (bullmq-otel) records a PRODUCER span when messages are enqueued and carries its context in
 * the job, the worker continues that trace with a CONSUMER span per delivery attempt, and every
 * log line written inside a span carries its `trace_id` and `span_id`.
 *
 * Off, nothing is loaded: the SDK is imported only when asked for, and queues get no telemetry.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { BullMQOtel } from 'bullmq-otel';

const TRACER = 'ghl-ingest';

/** What the OTEL_* variables ask for: traces exported somewhere. */
export function tracingRequested(env: Record<string, string | undefined> = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (exporters.length > 0) return !exporters.includes('none');
  return (env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim() !== '' || (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? '').trim() !== '';
}

export interface Tracing {
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK for this process when the environment asks for tracing. `serviceName` is the
 * default for OTEL_SERVICE_NAME. Traces only: metrics stay with Prometheus, logs with pino.
 */
export async function startTracing(serviceName: string): Promise<Tracing | undefined> {
  if (!tracingRequested()) return undefined;
  process.env.OTEL_SERVICE_NAME ??= serviceName;
  process.env.OTEL_METRICS_EXPORTER ??= 'none';
  process.env.OTEL_LOGS_EXPORTER ??= 'none';
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ instrumentations: [] });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

let telemetry: BullMQOtel | undefined;

/**
 * BullMQ's telemetry for the queues messages are enqueued on, when tracing is requested (in a
 * sync process using the library, its own SDK records the spans); otherwise undefined.
 */
export function queueTelemetry(): BullMQOtel | undefined {
  if (!tracingRequested()) return undefined;
  telemetry ??= new BullMQOtel({ tracerName: TRACER });
  return telemetry;
}

/** What a consumer span needs of a job: its queue, id, attempt and the context BullMQ stored with it. */
export interface TracedJob {
  id?: string | undefined;
  queueName: string;
  attemptsMade: number;
  opts: { telemetry?: { metadata?: string | undefined } | undefined };
}

export interface ConsumeOptions<T> {
  attributes: Attributes;
  /** Attributes of the attempt's result. */
  describe?: (result: T) => Attributes;
  /** Signals that end an attempt without failing it (a location told to wait, a worker stopping): no error status. */
  expected?: (error: unknown) => boolean;
}

/**
 * Runs one delivery attempt in a CONSUMER span whose parent is the context the producer stored
 * with the job (so enqueue and delivery share a trace id). `describe` turns the attempt's end
 * into attributes or an error status.
 */
export async function traceConsume<T>(job: TracedJob, options: ConsumeOptions<T>, run: () => Promise<T>): Promise<T> {
  const metadata = job.opts.telemetry?.metadata;
  let parent = context.active();
  if (metadata !== undefined) {
    try {
      parent = propagation.extract(parent, JSON.parse(metadata) as Record<string, string>);
    } catch {
      // Unreadable metadata: a new trace, not a failed delivery.
    }
  }
  const span = trace.getTracer(TRACER).startSpan(
    `deliver ${job.queueName}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'bullmq',
        'messaging.operation.type': 'process',
        'messaging.destination.name': job.queueName,
        'messaging.message.id': job.id ?? '',
        'ghl.attempt': job.attemptsMade + 1,
        ...options.attributes,
      },
    },
    parent,
  );
  try {
    const result = await context.with(trace.setSpan(parent, span), run);
    span.setAttributes(options.describe?.(result) ?? {});
    return result;
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    span.setAttribute('ghl.outcome', e.name);
    if (options.expected?.(error) !== true) {
      span.recordException(e);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
    }
    throw error;
  } finally {
    span.end();
  }
}

/** The ids of the span active now, for log lines; empty outside a span. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** Adds attributes to the span active now (the delivery attempt's), if any. */
export function annotateActiveSpan(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}
