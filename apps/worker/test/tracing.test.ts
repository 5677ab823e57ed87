/**
 * Traces that join others': a caller's `traceparent` at the intake, through the enqueue and the
 * delivery attempt, to a CLIENT span per request to HighLevel, whose `traceparent` header carries
 * the same trace on. The spans are recorded in memory (the SDK as `startTracing` starts it, with
 * an in-memory exporter); HighLevel is the stand-in, behind a local proxy that records the
 * headers each request brought. Span names never hold an id.
 */
import { once } from 'node:events';
import { createServer, request as forward, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { startIntake, type Intake } from '@ghl-ingest/producer';
import { createLogger, createRedis, FileStore, loadConfig, whenReady, type RedisClient } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData } from '@ghl-ingest/schema';
import { useRedis } from '@ghl-ingest/testing';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { sms, until, useHarness, type Harness } from './harness.ts';

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

/** A proxy in front of the stand-in (`target`, set once it runs) that keeps each request's method, path and headers. */
async function recordingProxy(): Promise<{ url: string; target: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  let target = '';
  const server = createServer((req, res) => {
    received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    const upstream = forward(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    // The stand-in reset the connection (a fault): so does the proxy.
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get target() {
      return target;
    },
    set target(url: string) {
      target = url;
    },
    received,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

describe('tracing that joins the caller’s trace', () => {
  const redis = useRedis();
  const harness = useHarness(redis);
  const exporter = new InMemorySpanExporter();
  let sdk: NodeSDK | undefined;
  /** Ids the tests met (locations, contacts, conversations, messages, keys, traces): no span name may hold one. */
  const ids = new Set<string>();
  const closing: (() => Promise<void>)[] = [];

  beforeAll(() => {
    // What `pnpm worker` and `ingest serve` see when tracing is asked for; the SDK is ours.
    vi.stubEnv('OTEL_TRACES_EXPORTER', 'otlp');
    vi.stubEnv('OTEL_METRICS_EXPORTER', 'none');
    vi.stubEnv('OTEL_LOGS_EXPORTER', 'none');
    sdk = new NodeSDK({ spanProcessors: [new SimpleSpanProcessor({ exporter })], instrumentations: [] });
    sdk.start();
  });

  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close();
  });

  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  const inTrace = (traceId: string, kind: SpanKind): ReadableSpan[] => spans().filter((s) => s.kind === kind && s.spanContext().traceId === traceId);

  /** A harness whose HighLevel is the stand-in behind the recording proxy. */
  async function proxied(options: Parameters<typeof harness>[0] = {}): Promise<{ h: Harness; received: Received[]; port: number }> {
    const proxy = await recordingProxy();
    closing.push(proxy.close);
    const h = await harness({ ...options, env: { GHL_API_BASE_URL: proxy.url, ...options.env } });
    proxy.target = h.fake.url;
    return { h, received: proxy.received, port: Number(new URL(proxy.url).port) };
  }

  /** `ingest serve` on the harness's settings (loopback, no token), logging into `logs`. */
  async function intake(h: Harness): Promise<{ intake: Intake; logs: string[] }> {
    const logs: string[] = [];
    const config = loadConfig(h.env);
    const connection: RedisClient = createRedis(config, 'producer', `${config.queuePrefix}:intake`);
    await whenReady(connection, 10_000);
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        logs.push(chunk.toString());
        done();
      },
    });
    const server = await startIntake(connection, config, createLogger('info', 'intake', sink), 0);
    closing.push(async () => {
      await server.close();
      connection.disconnect();
    });
    return { intake: server, logs };
  }

  const post = (server: Intake, record: Record<string, unknown>, headers: Record<string, string>) =>
    fetch(`${server.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(record) });

  /** Every id the stand-in handed out, for the check on span names. */
  function remember(h: Harness): void {
    for (const m of h.fake.messages()) for (const id of [m.messageId, m.altId, m.locationId]) if (id !== undefined) ids.add(id);
    for (const c of h.fake.contacts('locA')) ids.add(c.id);
    for (const c of h.fake.conversations('locA')) ids.add(c.id);
  }

  // Over every span of the file: no name holds an id; each is a route or a queue template.
  afterAll(async () => {
    try {
      const names = new Set(spans().map((s) => s.name));
      expect(names.size).toBeGreaterThan(0);
      for (const name of names) {
        for (const id of ids) expect(name, `span name "${name}" holds the id ${id}`).not.toContain(id);
        expect(name).toMatch(/^(?:[A-Z]+ \/[a-z0-9/]*(?:\{conversationId\}[a-z/]*)?|[A-Za-z]+ loc\.\{locationId\}(?:\.[a-z]+)?)$/);
      }
    } finally {
      await sdk?.shutdown();
      vi.unstubAllEnvs();
    }
  });

  it('a caller’s traceparent: intake, enqueue, delivery and the post to HighLevel are one trace; the post carries it on', async () => {
    const { h, received, port } = await proxied();
    const { intake: server } = await intake(h);
    await h.worker();
    const res = await post(server, sms(1), {
      traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      tracestate: 'caller=abc',
      baggage: 'user=someone-private',
    });
    expect(res.status).toBe(202);
    // The attempt's span ends after its post's.
    await until(() => inTrace(CALLER_TRACE, SpanKind.CONSUMER).length === 1, 20_000, 'the delivery attempt’s span');
    ids.add(CALLER_TRACE).add('contact-1').add('locA-m1');

    const [serverSpan] = inTrace(CALLER_TRACE, SpanKind.SERVER);
    expect(serverSpan).toMatchObject({ name: 'POST /v1/messages', parentSpanContext: { spanId: CALLER_SPAN, isRemote: true } });
    expect(serverSpan?.attributes).toEqual({
      'http.request.method': 'POST',
      'http.route': '/v1/messages',
      'url.path': '/v1/messages',
      'url.scheme': 'http',
      'http.response.status_code': 202,
    });
    const [producer] = inTrace(CALLER_TRACE, SpanKind.PRODUCER);
    expect(producer).toMatchObject({ name: 'addBulk loc.{locationId}', parentSpanContext: { spanId: serverSpan?.spanContext().spanId } });
    expect(producer?.attributes['ghl.location_id']).toBe('locA');
    const [consumer] = inTrace(CALLER_TRACE, SpanKind.CONSUMER);
    expect(consumer).toMatchObject({ name: 'deliver loc.{locationId}', parentSpanContext: { spanId: producer?.spanContext().spanId } });
    expect(consumer?.attributes).toMatchObject({ 'ghl.location_id': 'locA', 'messaging.destination.template': 'loc.{locationId}' });

    const [client] = inTrace(CALLER_TRACE, SpanKind.CLIENT);
    expect(client).toMatchObject({ name: 'POST /conversations/messages/inbound', parentSpanContext: { spanId: consumer?.spanContext().spanId } });
    // Exactly these: no header (the token is one), no body.
    expect(client?.attributes).toEqual({
      'http.request.method': 'POST',
      'server.address': '127.0.0.1',
      'server.port': port,
      'url.full': `http://127.0.0.1:${port}/conversations/messages/inbound`,
      'url.template': '/conversations/messages/inbound',
      'ghl.request_kind': 'post',
      'ghl.location_id': 'locA',
      'http.response.status_code': 201,
    });
    expect(client?.status.code).toBe(SpanStatusCode.UNSET);
    expect(client?.spanContext().traceState?.get('caller')).toBe('abc');

    // HighLevel got the trace (the post's own span as parent), and none of the caller's baggage.
    const inbound = received.find((r) => r.path === '/conversations/messages/inbound');
    expect(inbound?.headers.traceparent).toBe(`00-${CALLER_TRACE}-${client?.spanContext().spanId}-01`);
    expect(inbound?.headers.tracestate).toBe('caller=abc');
    expect(inbound?.headers.baggage).toBeUndefined();
    remember(h);
  }, 30_000);

  const valid = { trace: CALLER_TRACE, span: CALLER_SPAN };
  it.each([
    ['a trace id one digit short', `00-${valid.trace.slice(1)}-${valid.span}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${valid.span}-01`],
    ['an all-zero span id', `00-${valid.trace}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${valid.trace}-${valid.span}-01`],
    ['upper-case hex', `00-${valid.trace.toUpperCase()}-${valid.span}-01`],
    ['version 00 with more after it', `00-${valid.trace}-${valid.span}-01-extra`],
    ['8 KB of it', `00-${valid.trace}-${valid.span}-01-${'x'.repeat(8_000)}`],
    ['a forged log line', `00-${valid.trace}-${valid.span}-01","level":60,"msg":"forged`],
  ])(
    '%s: a new trace, answered 202 as usual, the header never in a log line',
    async (_what, traceparent) => {
      const { h } = await proxied();
      const { intake: server, logs } = await intake(h);
      const before = spans().length;
      const res = await post(server, sms(2), { traceparent, tracestate: 'caller=abc' });
      expect(res.status).toBe(202);
      await until(
        () =>
          spans()
            .slice(before)
            .some((s) => s.kind === SpanKind.SERVER),
        10_000,
        'the intake’s span',
      );
      const serverSpan = spans()
        .slice(before)
        .find((s) => s.kind === SpanKind.SERVER);
      expect(serverSpan?.parentSpanContext).toBeUndefined();
      const traceId = serverSpan?.spanContext().traceId ?? '';
      expect(traceId).not.toBe(CALLER_TRACE);
      expect(serverSpan?.spanContext().traceState).toBeUndefined();
      // What it enqueued is in the new trace.
      expect(inTrace(traceId, SpanKind.PRODUCER)).toHaveLength(1);
      const text = logs.join('');
      expect(text).not.toContain('forged');
      expect(text).not.toContain(valid.span);
      ids.add(traceId);
    },
    20_000,
  );

  it('every request a delivery makes is a CLIENT span named by its route template, with its kind; a lost answer is an error by its code', async () => {
    // The contact is found by phone, its conversation created for the file, the file uploaded; the
    // post is recorded and its connection reset, so the next attempt reads the conversation back.
    const { h } = await proxied({ fake: { faults: { dropAfterAccept: 1 }, faultRoutes: ['inbound'] } });
    const store = new FileStore(h.redis, h.config.queuePrefix);
    const bytes = Buffer.from('a small picture');
    const file = { name: 'a.png', bytes: bytes.length, sha256: await store.put(bytes), from: 'file:///data/a.png' };
    const r = normalizeRecord(
      { locationId: 'locA', type: 'SMS', message: 'with a picture', key: 'traced-1', contact: { phone: '+14155550100' }, attachments: [file.from] },
      { localFiles: 'allow' },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const before = spans().length;
    const [outcome] = await h.enqueuer.enqueue([toJobData(r.record, 'backfill', { files: [file] })]);
    expect(outcome).toBe('queued');
    await h.worker();
    await until(() => h.fake.stats().accepted === 1, 20_000, 'the message');
    await h.settled(['locA']);
    await until(
      () =>
        spans()
          .slice(before)
          .some((s) => s.kind === SpanKind.CONSUMER && s.attributes['ghl.message_id'] !== undefined),
      10_000,
      'the last attempt',
    );

    const [producer] = spans()
      .slice(before)
      .filter((s) => s.kind === SpanKind.PRODUCER);
    const clients = inTrace(producer?.spanContext().traceId ?? '', SpanKind.CLIENT);
    const kinds = new Set(clients.map((s) => `${s.name} ${String(s.attributes['ghl.request_kind'])}`));
    // The search twice: for the upload's conversation, then to look the lost post up.
    expect([...kinds].sort()).toEqual([
      'GET /conversations/search conversation',
      'GET /conversations/search lookup',
      'GET /conversations/{conversationId}/messages lookup',
      'POST /contacts/upsert upsert',
      'POST /conversations/ conversation',
      'POST /conversations/messages/inbound post',
      'POST /conversations/messages/upload upload',
    ]);
    for (const span of clients) expect(span.attributes['ghl.location_id']).toBe('locA');
    const read = clients.find((s) => s.name === 'GET /conversations/{conversationId}/messages');
    const [conversation] = h.fake.conversations('locA');
    expect(read?.attributes).toMatchObject({ 'url.template': '/conversations/{conversationId}/messages', 'http.response.status_code': 200 });
    expect(read?.attributes['url.full']).toContain(`/conversations/${conversation?.id ?? '?'}/messages?limit=100`);
    // The post whose answer was lost: an error named by its code, with no status.
    const lost = clients.find((s) => s.name === 'POST /conversations/messages/inbound');
    expect(lost?.status.code).toBe(SpanStatusCode.ERROR);
    expect(lost?.attributes['http.response.status_code']).toBeUndefined();
    expect(lost?.attributes['error.type']).toMatch(/^E[A-Z_]+$/);
    ids.add('traced-1').add('+14155550100').add(file.sha256);
    remember(h);
  }, 40_000);
});
