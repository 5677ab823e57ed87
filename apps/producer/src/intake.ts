/**
 * `ingest serve`: the HTTP intake for live sync processes (fastify).
 * - `POST /v1/messages`: one record or an array of up to 1,000 as JSON, or NDJSON
 *   (`application/x-ndjson`, one record per line); `Content-Encoding: gzip` accepted. 202 with a
 *   result per record.
 * - Every size limit counts the body as decompressed, so a small compressed bomb is a 413.
 * - Bearer `INTAKE_TOKEN`, compared in constant time, on every route but those in OPEN_ROUTES;
 *   without a token it serves loopback only.
 * - 413 past the body limit, 400 for malformed JSON, 503 with `Retry-After` when Redis cannot be
 *   reached or a location's queue is over its high-water mark (backpressure, not unbounded growth).
 * - `GET /healthz` (alive), `GET /readyz` (Redis answers), `GET /metrics` (Prometheus: requests
 *   by status, records accepted and rejected, request latency, build info, Node's default process
 *   metrics).
 * - A request must arrive whole within REQUEST_TIMEOUT_MS, and a connection silent for
 *   CONNECTION_TIMEOUT_MS is closed; an upload cut short gives its share of the in-flight budget
 *   back at once.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { buildInfo, checkRedis, ConfigError, oauthAppClient, openOAuthStore, ProducerLocations, readiness, type Config, type Logger } from '@ghl-ingest/queue';
import Fastify, { type FastifyRequest } from 'fastify';
import type { RedisClient } from '@ghl-ingest/queue';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { producerOn } from './producer.ts';
import { Producers } from './intake/producers.ts';
import { QueueDepth } from './intake/queue-depth.ts';
import { traceRequests } from './intake/trace.ts';

export const MAX_RECORDS_PER_REQUEST = 1000;
/** Bytes of one request: room for 1,000 records of a few KB each. */
export const BODY_LIMIT = 10 * 1024 * 1024;
/**
 * A body announced over BODY_LIMIT is answered 413 at once; a client still sending it would meet
 * a closed connection (a broken pipe, and no answer) if the rest were not read. Up to this many
 * bytes it is read and dropped, so the client gets the 413 and why; past it the connection closes.
 */
const DRAIN_LIMIT = 8 * BODY_LIMIT;
/** Bytes of all requests in progress (each parsed body takes a few times its size in memory). */
export const MAX_INFLIGHT_BYTES = 4 * BODY_LIMIT;
/** Milliseconds a request may take to arrive whole (headers and body): 10 MB at about 1.4 Mbit/s. */
export const REQUEST_TIMEOUT_MS = 60_000;
/**
 * Milliseconds a connection may stay silent while a request is in progress before it is closed
 * (an idle keep-alive connection closes after fastify's keepAliveTimeout, 72 s).
 */
export const CONNECTION_TIMEOUT_MS = 30_000;
/**
 * The routes served without the bearer token, as `METHOD pattern` of the route a request matched
 * (never its raw URL, which may spell the same route many ways): probes, the scrape, and the
 * marketplace's install redirect and signed webhooks, which carry their own proof. Every other
 * route, and any request that matches none, needs the token.
 */
const OPEN_ROUTES: ReadonlySet<string> = new Set(['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /oauth/callback', 'POST /webhooks/highlevel']);
/** The route whose requests `ghl_ingest_intake_requests_total` counts. */
const MESSAGES_ROUTE = '/v1/messages';
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
/** NDJSON under the names senders use for it. */
const NDJSON = /^application\/(x-ndjson|ndjson|jsonl|x-jsonlines)\b/i;

/** A request the intake refuses before reading it, with the status and message it answers. */
class RequestRefused extends Error {
  readonly statusCode: number;
  readonly error: string;

  constructor(statusCode: number, error: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.error = error;
  }
}

/**
 * A Redis call of a request failed: the queue cannot take the records now (503, retry later).
 * On Redis Cluster a failover shows as errors of many kinds while the slot moves (closed
 * connections, MOVED replies past the redirection limit, CLUSTERDOWN); none of them is the
 * sender's fault nor ours. A programming error (TypeError and the like) stays a 500.
 */
class QueueUnavailable extends Error {}

async function viaRedis<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError) throw error;
    throw new QueueUnavailable('the queue (Redis) refused the call', { cause: error });
  }
}

export interface Intake {
  url: string;
  close(): Promise<void>;
}

export async function startIntake(redis: RedisClient, config: Config, logger: Logger, port = config.intake.port): Promise<Intake> {
  const { token, host, highWater } = config.intake;
  if (token === undefined && !LOOPBACK.has(host)) {
    throw new ConfigError(`refusing to serve on ${host} without INTAKE_TOKEN: set a token, or bind to 127.0.0.1 (INTAKE_HOST)`);
  }
  await checkRedis(redis, (fields, message) => logger.warn(fields, message));
  const producers = new Producers(() => producerOn(redis, config));
  const depth = new QueueDepth(redis, config.queuePrefix);
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT,
    requestTimeout: REQUEST_TIMEOUT_MS,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
  });
  const expected = token === undefined ? undefined : digest(token);
  const metrics = new IntakeMetrics();

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error instanceof RequestRefused) return reply.code(error.statusCode).send({ error: error.error, message: error.message });
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      // Refused by its announced length, before any of it was read (a compressed body is read
      // through a decompressor, and refused as it grows: that connection closes).
      const length = Number(request.headers['content-length']);
      if (!isCompressed(request.headers['content-encoding']) && length > BODY_LIMIT && length <= DRAIN_LIMIT) {
        reply.removeHeader('connection');
        request.raw.resume();
      }
      return reply
        .code(413)
        .send({ error: 'payload_too_large', message: `the body is over ${BODY_LIMIT} bytes (decompressed); send fewer records per request` });
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ error: 'unsupported_media_type', message: 'send the records as JSON (application/json) or NDJSON (application/x-ndjson)' });
    }
    if (error.code?.startsWith('Z_') === true) {
      return reply.code(400).send({ error: 'bad_request', message: `the body is not valid gzip (${error.code}): ${error.message}` });
    }
    if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
      return reply.code(400).send({ error: 'bad_request', message: 'the body is empty: send a record or an array of records' });
    if (error.statusCode === 400) return reply.code(400).send({ error: 'bad_request', message: `the body is not valid JSON: ${error.message}` });
    if (error.statusCode !== undefined && error.statusCode > 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ error: 'bad_request', message: error.message });
    }
    // Redis away: producer connections fail fast while they are not ready (connection.ts), run
    // out of retries for a command sent just before the connection dropped, or meet a failover.
    if (error instanceof QueueUnavailable || redis.status !== 'ready') {
      if (error instanceof QueueUnavailable) logger.warn({ err: error.cause }, 'the queue refused a request; answered 503');
      return reply.code(503).header('retry-after', '5').send({ error: 'unavailable', message: 'the queue (Redis) cannot be reached; retry later' });
    }
    logger.error({ err: error }, 'intake error');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });

  // First of all hooks: a request without the token costs nothing else (no budget, no parsing).
  app.addHook('onRequest', async (request, reply) => {
    if (expected === undefined || isOpen(request)) return;
    const header = request.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!timingSafeEqual(digest(given), expected)) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: 'a valid bearer token is required' });
    }
  });
  // A SERVER span per request, continuing the caller's trace (traceparent), when tracing is on.
  traceRequests(app);

  // Bodies being read or handled at once, in bytes (a body of unknown length counts as the limit):
  // past MAX_INFLIGHT_BYTES a request waits its turn with a 503, so memory stays bounded. A
  // request's share is given back exactly once, when its response is done or its connection closes
  // first (a client that aborts mid-body, a request timeout): onResponse alone never runs for those.
  let inflightBytes = 0;
  const counted = new WeakMap<object, number>();
  const release = (request: FastifyRequest): void => {
    const bytes = counted.get(request);
    if (bytes === undefined) return;
    counted.delete(request);
    inflightBytes -= bytes;
  };
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return;
    // A compressed body may grow to the limit whatever its length on the wire.
    const length = isCompressed(request.headers['content-encoding']) ? BODY_LIMIT : Number(request.headers['content-length'] ?? BODY_LIMIT);
    const bytes = Number.isFinite(length) ? Math.min(length, BODY_LIMIT) : BODY_LIMIT;
    if (inflightBytes > 0 && inflightBytes + bytes > MAX_INFLIGHT_BYTES) {
      await reply.code(503).header('retry-after', '1').send({ error: 'busy', message: 'too much data in flight at once; retry in a second' });
      return;
    }
    inflightBytes += bytes;
    counted.set(request, bytes);
    reply.raw.once('close', () => release(request));
  });
  app.addHook('onResponse', (request, reply, done) => {
    release(request);
    if (request.routeOptions.url === MESSAGES_ROUTE) metrics.answered(reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  // gzip is undone before parsing, so fastify's body limit counts decompressed bytes.
  app.addHook('preParsing', async (request, _reply, payload) => {
    const encoding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding === 'identity' || encoding === '') return payload;
    if (encoding !== 'gzip' && encoding !== 'x-gzip') {
      throw new RequestRefused(415, 'unsupported_media_type', `Content-Encoding "${encoding}" is not supported: send gzip or an uncompressed body`);
    }
    return gunzip(payload);
  });

  app.addContentTypeParser(NDJSON, { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseNdjson(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  app.post(MESSAGES_ROUTE, async (request, reply) => {
    const body = request.body;
    const records = Array.isArray(body) ? (body as unknown[]) : [body];
    if (records.length === 0) return reply.code(400).send({ error: 'bad_request', message: 'no records' });
    if (records.length > MAX_RECORDS_PER_REQUEST) {
      return reply.code(413).send({ error: 'payload_too_large', message: `at most ${MAX_RECORDS_PER_REQUEST} records per request, not ${records.length}` });
    }
    const { results, jobs } = producers.check(records);
    const locations = new Set(jobs.map((j) => j.locationId));
    const full = await viaRedis(() => depth.over(locations, highWater));
    if (full !== undefined) {
      return reply
        .code(503)
        .header('retry-after', '30')
        .send({ error: 'backpressure', message: `location ${full} has over ${highWater} messages waiting; retry later` });
    }
    const accepted = results.filter((r) => r.ok).length;
    if (accepted === 0) {
      metrics.records(0, results.length);
      // Nothing to enqueue: a 4xx, so a sender that only looks at the status still hears it.
      return reply
        .code(400)
        .send({ error: 'invalid_records', message: "no record is valid; each one's errors are in results", accepted, rejected: results.length, results });
    }
    await viaRedis(() =>
      producers.send(
        records.filter((_, i) => results[i]?.ok === true),
        locations,
      ),
    );
    for (const job of jobs) depth.added(job.locationId);
    metrics.records(accepted, results.length - accepted);
    return reply.code(202).send({ accepted, rejected: results.length - accepted, results });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no ${request.method} ${request.url.split('?')[0] ?? ''} here: records go to POST /v1/messages` }),
  );

  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) => reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));
  app.get('/readyz', async (_request, reply) => {
    const r = await readiness(redis);
    if (r.retryAfter !== undefined) void reply.header('retry-after', String(r.retryAfter));
    return reply.code(r.status).send(r.body);
  });

  const oauthStore = openOAuthStore(redis, config);
  if (oauthStore !== undefined) {
    // A marketplace app's install redirect and webhooks (marketplace.ts): in OPEN_ROUTES.
    const { marketplaceRoutes, webhookKey, WebhookReplayGuard } = await import('./marketplace.ts');
    await app.register(
      marketplaceRoutes({
        store: oauthStore,
        client: oauthAppClient(config),
        webhookKey: config.webhookPublicKey === undefined ? undefined : webhookKey(config.webhookPublicKey),
        state: new ProducerLocations(redis, { prefix: config.queuePrefix }),
        replay: new WebhookReplayGuard(redis, config.queuePrefix),
        logger,
      }),
    );
  }

  await app.listen({ port, host });
  const address = app.server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    async close() {
      await app.close();
      await producers.close();
    },
  };
}

class IntakeMetrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: 'ghl_ingest_intake_requests_total',
    help: 'Requests to POST /v1/messages by HTTP status.',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly #records = new Counter({
    name: 'ghl_ingest_intake_records_total',
    help: 'Records received by the intake, by result (accepted, rejected).',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: 'ghl_ingest_intake_request_duration_seconds',
    help: 'Time to answer POST /v1/messages (reading, validating, enqueueing).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'ghl_ingest_build_info',
      help: 'Always 1: the version of this intake, its git revision ("unknown" outside a git checkout) and the Node version it runs on.',
      labelNames: ['version', 'revision', 'node_version'],
      registers: [this.registry],
    }).set({ ...buildInfo(new URL('../package.json', import.meta.url)) }, 1);
  }

  answered(status: number, seconds: number): void {
    this.#requests.inc({ status: String(status) });
    this.#latency.observe(seconds);
  }

  records(accepted: number, rejected: number): void {
    this.#records.inc({ result: 'accepted' }, accepted);
    this.#records.inc({ result: 'rejected' }, rejected);
  }
}

function isCompressed(encoding: string | undefined): boolean {
  const e = (encoding ?? '').trim().toLowerCase();
  return e !== '' && e !== 'identity';
}

/**
 * The decompressed body. fastify compares the bytes received with Content-Length, so the stream
 * says how many compressed bytes came in (`receivedEncodedLength`, fastify's name for it).
 */
function gunzip(payload: Readable): Readable {
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      callback(null, chunk);
    },
  });
  const out = createGunzip();
  payload.on('error', (error) => out.destroy(error));
  counter.on('error', (error) => out.destroy(error));
  payload.pipe(counter).pipe(out);
  Object.defineProperty(out, 'receivedEncodedLength', { get: () => received });
  return out;
}

/** One record per non-blank line; a line that is not JSON is a 400 naming it. */
export function parseNdjson(text: string): unknown[] {
  const records: unknown[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    try {
      records.push(JSON.parse(line));
    } catch (error) {
      throw new RequestRefused(400, 'bad_request', `line ${i + 1} of the NDJSON body is not valid JSON: ${(error as Error).message}`);
    }
  }
  if (records.length === 0) throw new RequestRefused(400, 'bad_request', 'the body is empty: send a record or an array of records');
  return records;
}

function isOpen(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  if (route === undefined) return false; // matched no route: needs the token too
  // fastify answers HEAD for each GET route with the GET's handler.
  return OPEN_ROUTES.has(`${request.method === 'HEAD' ? 'GET' : request.method} ${route}`);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
