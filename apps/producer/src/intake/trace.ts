/**
 * The intake's requests as SERVER spans (tracing on only): each continues its caller's trace when
 * its `traceparent` is valid (a new trace otherwise), and its handling runs in the span's
 * context, so the messages it enqueues carry the trace on to the worker. The span is named by
 * the route the request matched (`POST /v1/messages`), and ends with the answer's status.
 */
import { startServerSpan, tracingRequested, type ServerSpan } from '@ghl-ingest/queue';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';

/** Adds the hooks; register it after the token check, so a request without the token costs no span. */
export function traceRequests<Log extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Log>,
): void {
  if (!tracingRequested()) return;
  const spans = new WeakMap<FastifyRequest, ServerSpan>();
  app.addHook('onRequest', (request, _reply, done) => {
    const span = startServerSpan({
      method: request.method,
      route: request.routeOptions.url,
      path: request.url.split('?')[0] ?? '',
      scheme: request.protocol,
      headers: request.headers,
    });
    spans.set(request, span);
    span.run(done);
  });
  // The body is read outside any request's context (its stream's events): the handler is given
  // the span's context again here, the last step before it runs.
  app.addHook('preHandler', (request, _reply, done) => {
    const span = spans.get(request);
    if (span === undefined) done();
    else span.run(done);
  });
  app.addHook('onResponse', (request, reply, done) => {
    spans.get(request)?.end({ status: reply.statusCode });
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    spans.get(request)?.end({ errorCode: 'aborted' });
    done();
  });
}
