/**
 * Optional OpenTelemetry tracing, from enqueue to delivery. Off unless the standard OTEL_*
 * variables ask for it (an OTLP endpoint, or OTEL_TRACES_EXPORTER other than `none`; never with
 * OTEL_SDK_DISABLED=true): then a process starts the OpenTelemetry SDK (configured by those same
 * variables: endpoint, protocol, headers, sampler, OTEL_SERVICE_NAME), BullMQ's own telemetry
 * (bullmq-otel) records a PRODUCER span when messages are enqueued and carries its context in
 * the job, the worker continues that trace with a CONSUMER span per delivery attempt, and every
 * log line written inside a span carries its `trace_id` and `span_id`. The intake continues a
 * caller's W3C trace context in a SERVER span (http-spans.ts), and each request to HighLevel is a
 * CLIENT span that passes the trace on in its `traceparent` header.
 *
 * Span names are of low cardinality: a location queue's name in one becomes `loc.{locationId}`,
 * the location goes in `ghl.location_id`.
 *
 * Off, nothing is loaded: the SDK is imported only when asked for, and queues get no telemetry.
 */
import { context, createContextKey, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Context } from '@opentelemetry/api';
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';

export const TRACER = 'ghl-ingest';

/** A location queue's name (`loc.{<locationId>}`, keys.ts) inside a span name. */
const LOCATION_QUEUE = /loc\.\{([^}]*)\}/g;
/** What a location queue's name becomes in a span name. */
export const LOCATION_QUEUE_TEMPLATE = 'loc.{locationId}';
/** The location a delivery attempt is for, in its context: the attempt's requests to HighLevel name it too. */
const LOCATION = createContextKey('ghl.location_id');

/**
 * A span name of low cardinality: each location queue's name in it becomes its template
 * (`addBulk loc.{abc}` → `addBulk loc.{locationId}`); the (first) location is given apart, for
 * the `ghl.location_id` attribute.
 */
export function spanNameOf(name: string): { name: string; locationId: string | undefined } {
  const locationId = [...name.matchAll(LOCATION_QUEUE)][0]?.[1];
  return { name: locationId === undefined ? name : name.replaceAll(LOCATION_QUEUE, LOCATION_QUEUE_TEMPLATE), locationId };
}

/** The location of the delivery attempt whose context is active, if any. */
export function activeLocation(ctx: Context = context.active()): string | undefined {
  const value = ctx.getValue(LOCATION);
  return typeof value === 'string' ? value : undefined;
}

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

let telemetry: Telemetry<Context> | undefined;

/**
 * BullMQ's telemetry for the queues messages are enqueued on, when tracing is requested (in a
 * sync process using the library, its own SDK records the spans); otherwise undefined.
 */
export function queueTelemetry(): Telemetry<Context> | undefined {
  if (!tracingRequested()) return undefined;
  telemetry ??= lowCardinality(new BullMQOtel({ tracerName: TRACER }));
  return telemetry;
}

/**
 * BullMQ names its spans after the queue (`addBulk loc.{<locationId>}`): a name per location.
 * Its spans are renamed by `spanNameOf`, the location set as `ghl.location_id`.
 */
function lowCardinality(otel: BullMQOtel): Telemetry<Context> {
  return {
    contextManager: otel.contextManager,
    tracer: {
      startSpan(name, options, ctx) {
        const named = spanNameOf(name);
        const span = otel.tracer.startSpan(named.name, options, ctx);
        if (named.locationId !== undefined) span.setAttribute('ghl.location_id', named.locationId);
        return span;
      },
    },
  };
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
 * with the job (so enqueue and delivery share a trace id), named `deliver loc.{locationId}`.
 * `describe` turns the attempt's end into attributes or an error status. The attempt's context
 * carries its location, for the spans of its requests (`activeLocation`).
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
  const named = spanNameOf(`deliver ${job.queueName}`);
  const span = trace.getTracer(TRACER).startSpan(
    named.name,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'bullmq',
        'messaging.operation.type': 'process',
        'messaging.destination.name': job.queueName,
        ...(named.locationId === undefined ? {} : { 'messaging.destination.template': LOCATION_QUEUE_TEMPLATE, 'ghl.location_id': named.locationId }),
        'messaging.message.id': job.id ?? '',
        'ghl.attempt': job.attemptsMade + 1,
        ...options.attributes,
      },
    },
    parent,
  );
  const attempt = trace.setSpan(named.locationId === undefined ? parent : parent.setValue(LOCATION, named.locationId), span);
  try {
    const result = await context.with(attempt, run);
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
