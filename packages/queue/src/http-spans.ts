/**
 * HTTP spans by OpenTelemetry's HTTP semantic conventions: the intake's SERVER span, which
 * continues a caller's trace, and a CLIENT span per request to HighLevel, which passes the trace on.
 *
 * - Names are `{method} {route template}` (`POST /v1/messages`, `GET /conversations/{conversationId}/messages`):
 *   never an id. The location is the `ghl.location_id` attribute.
 * - A caller's trace context is read with the propagator the SDK configured (W3C `traceparent` and
 *   `tracestate` by default; OTEL_PROPAGATORS), never by hand: a malformed or hostile header is
 *   ignored, and the request starts a new trace. A caller's `baggage` is not taken: it would be
 *   stored with every job and sent on to HighLevel.
 * - Headers never become attributes (the token is one); `url.full` has credentials and secret
 *   query values redacted.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context } from '@opentelemetry/api';
import { activeLocation, TRACER } from './tracing.ts';

/** The methods the conventions name; another is `_OTHER` (and its span just `HTTP`). */
const KNOWN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']);
/** Query parameters whose values `url.full` never shows (the conventions' list, and OAuth's). */
const SECRET_PARAMS: ReadonlySet<string> = new Set([
  'awsaccesskeyid',
  'signature',
  'sig',
  'x-goog-signature',
  'access_token',
  'refresh_token',
  'client_secret',
  'code',
  'token',
  'key',
  'api_key',
  'password',
]);
/** Characters of a request's path kept in `url.path`: a caller chooses it, and may make it long. */
const MAX_PATH = 1024;
/** A propagator field never taken from a caller nor sent to HighLevel. */
const BAGGAGE = 'baggage';

/** A span name by the conventions: `{method} {route}`, the method alone without a route, `HTTP` for an unknown method. */
export function httpSpanName(method: string, route: string | undefined): string {
  const known = KNOWN_METHODS.has(method.toUpperCase());
  if (!known) return 'HTTP';
  return route === undefined ? method.toUpperCase() : `${method.toUpperCase()} ${route}`;
}

/** How an exchange ended: the answer's status, or the code of the error that left none (`ECONNRESET`, `aborted`). */
export type HttpAnswer = { status: number } | { errorCode: string };

/**
 * The attributes of an exchange's end and whether it failed: a client fails on a 4xx or 5xx, a
 * server on a 5xx only (a 4xx is the caller's doing); `error.type` is the status as a string, or
 * the error's code.
 */
export function answerAttributes(answer: HttpAnswer, side: 'client' | 'server'): { attributes: Attributes; failed: boolean } {
  if ('errorCode' in answer) return { attributes: { 'error.type': answer.errorCode }, failed: true };
  const failed = answer.status >= (side === 'client' ? 400 : 500);
  return { attributes: { 'http.response.status_code': answer.status, ...(failed ? { 'error.type': String(answer.status) } : {}) }, failed };
}

/** A URL as `url.full` shows it: user and password, and the values of secret query parameters, as `REDACTED`. */
export function redactedUrl(url: URL): string {
  const shown = new URL(url.href);
  if (shown.username !== '') shown.username = 'REDACTED';
  if (shown.password !== '') shown.password = 'REDACTED';
  for (const name of new Set(shown.searchParams.keys())) {
    if (SECRET_PARAMS.has(name.toLowerCase())) shown.searchParams.set(name, 'REDACTED');
  }
  return shown.href;
}

/** The trace context a caller's headers carry (W3C by default), or none: the root context. Baggage is left out. */
export function callerContext(headers: Readonly<Record<string, string | string[] | undefined>>): Context {
  const carrier: Record<string, string> = {};
  for (const field of propagation.fields()) {
    const value = headers[field];
    if (field !== BAGGAGE && typeof value === 'string') carrier[field] = value;
  }
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** What a server span needs of a request. */
export interface ServerRequest {
  method: string;
  /** The route it matched, as its template (`/v1/messages`); undefined when it matched none. */
  route: string | undefined;
  /** Its path, without the query. */
  path: string;
  scheme: 'http' | 'https';
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface ServerSpan {
  /** Runs `fn` in the span's context: what it enqueues (and logs) joins the trace. */
  run<T>(fn: () => T): T;
  /** Ends the span with how the exchange ended; later calls do nothing. */
  end(answer: HttpAnswer): void;
}

/** A SERVER span for a request, the child of the caller's span when its headers carry a valid trace context. */
export function startServerSpan(request: ServerRequest): ServerSpan {
  const parent = callerContext(request.headers);
  const method = request.method.toUpperCase();
  const span = trace.getTracer(TRACER).startSpan(
    httpSpanName(method, request.route),
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': KNOWN_METHODS.has(method) ? method : '_OTHER',
        'url.path': request.path.slice(0, MAX_PATH),
        'url.scheme': request.scheme,
        ...(request.route === undefined ? {} : { 'http.route': request.route }),
      },
    },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  let ended = false;
  return {
    run: (fn) => context.with(ctx, fn),
    end(answer) {
      if (ended) return;
      ended = true;
      const { attributes, failed } = answerAttributes(answer, 'server');
      span.setAttributes(attributes);
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/** What a client span needs of a request. */
export interface ClientRequest {
  method: string;
  /** The path as a template, ids left out (`/conversations/{conversationId}/messages`): the span's name. */
  route: string;
  /** The whole URL, query included (shown redacted). */
  url: URL;
  /** What the request is for (`ghl.request_kind`): post, lookup, upsert, conversation, upload. */
  kind: string;
}

/**
 * Sends a request in a CLIENT span, the child of the span active now (a delivery attempt's).
 * `send` gets the headers that carry the trace on (`traceparent`, `tracestate`; never baggage);
 * `answer` says how the request ended. A `send` that throws ends the span with its error.
 */
export async function traceClient<T>(
  request: ClientRequest,
  send: (headers: Record<string, string>) => Promise<T>,
  answer: (result: T) => HttpAnswer,
): Promise<T> {
  const parent = context.active();
  const method = request.method.toUpperCase();
  const location = activeLocation(parent);
  const port = request.url.port === '' ? (request.url.protocol === 'https:' ? 443 : 80) : Number(request.url.port);
  const span = trace.getTracer(TRACER).startSpan(
    httpSpanName(method, request.route),
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': KNOWN_METHODS.has(method) ? method : '_OTHER',
        'server.address': request.url.hostname,
        'server.port': port,
        'url.full': redactedUrl(request.url),
        'url.template': request.route,
        'ghl.request_kind': request.kind,
        ...(location === undefined ? {} : { 'ghl.location_id': location }),
      },
    },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  const headers = Object.fromEntries(Object.entries(carrier).filter(([name]) => name !== BAGGAGE));
  try {
    const result = await context.with(ctx, () => send(headers));
    const { attributes, failed } = answerAttributes(answer(result), 'client');
    span.setAttributes(attributes);
    if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
    return result;
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    span.setAttribute('error.type', e.name);
    span.recordException(e);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
    throw error;
  } finally {
    span.end();
  }
}
