/**
 * The worker's admin endpoint on ADMIN_PORT: `/metrics` (Prometheus text), `/healthz` (alive),
 * `/readyz` (Redis answers), and the BullMQ dashboard (bull-board) at `/dashboard` behind basic
 * auth, only when DASHBOARD_USER and DASHBOARD_PASSWORD are both set. The dashboard shows the
 * dead-letter queue and the locations this process serves, read-only unless
 * DASHBOARD_ALLOW_CHANGES=true (dead letters are fixed and redriven with `ingest dlq`).
 * Deny by default: every route but those in OPEN_ROUTES needs the dashboard's credentials, judged
 * by the route a request matched, never by its raw URL.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifyBasicAuth from '@fastify/basic-auth';
import { ConfigError, deadLetterQueueName, LocationQueues, mixesSlots, readiness, type Config, type Logger } from '@ghl-ingest/queue';
import { Queue } from 'bullmq';
import Fastify, { type FastifyRequest } from 'fastify';
import type { RedisClient } from '@ghl-ingest/queue';
import type { WorkerMetrics } from './metrics.ts';

export interface AdminServer {
  url: string;
  /** A location this process now serves: shown on the dashboard (the first DASHBOARD_QUEUES of them). */
  addLocation(locationId: string): void;
  close(): Promise<void>;
}

/** Queues one process's dashboard lists at most: a page of thousands helps nobody. */
const DASHBOARD_QUEUES = 200;
/** With the default ADMIN_PORT, the ports tried after it when it is taken (several workers on one host). */
const DEFAULT_PORT_TRIES = 64;
/** Routes served without credentials, as `METHOD pattern` of the matched route: probes and the scrape. */
const OPEN_ROUTES: ReadonlySet<string> = new Set(['GET /healthz', 'GET /readyz', 'GET /metrics']);

export async function startAdminServer(options: {
  config: Config;
  redis: RedisClient;
  metrics: WorkerMetrics;
  logger: Logger;
  port?: number;
  /** ADMIN_PORT was set: a taken port is an error. Otherwise the next free port after it is used. */
  explicitPort?: boolean;
  host?: string;
}): Promise<AdminServer> {
  const { config, redis, metrics } = options;
  // Scrapes and health checks every few seconds are not news: the admin server logs warnings only.
  const app = Fastify({ loggerInstance: options.logger.child({ component: 'admin' }, { level: 'warn' }) });

  const queues: Queue[] = [];
  // The dashboard's location queues: at most DASHBOARD_QUEUES of them (see addLocation), all kept until close.
  const locationQueues = new LocationQueues({ connection: redis, prefix: config.queuePrefix });
  let addQueue: (queue: Queue) => void = () => undefined;
  const dashboard = config.dashboard;
  // Every route lives in this one scope, under its one check (fastify types a plugin's instance
  // with its own logger type, which bull-board and basic-auth expect).
  await app.register(async (scope) => {
    if (dashboard === undefined) {
      // Only the open routes exist; one added later is not served unprotected.
      scope.addHook('onRequest', async (request, reply) => {
        if (!isOpen(request)) await reply.code(404).send({ error: 'not_found', message: 'not found' });
      });
    } else {
      const user = digest(dashboard.user);
      const password = digest(dashboard.password);
      await scope.register(fastifyBasicAuth, {
        authenticate: { realm: 'ghl-ingest' },
        validate: async (u: string, p: string) => {
          // Both compared in full, in constant time, and combined without a short cut: a wrong
          // user name takes as long as a wrong password.
          const userMatches = Number(timingSafeEqual(digest(u), user));
          const passwordMatches = Number(timingSafeEqual(digest(p), password));
          if ((userMatches & passwordMatches) !== 1) throw new Error('wrong credentials');
          return Promise.resolve();
        },
      });
      scope.addHook('onRequest', (request, reply, done) => {
        if (isOpen(request)) {
          done();
          return;
        }
        scope.basicAuth(request, reply, done);
      });
      const serverAdapter = new FastifyAdapter();
      serverAdapter.setBasePath('/dashboard');
      const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'ghl-ingest' } } });
      addQueue = (queue) => board.addQueue(new BullMQAdapter(queue, { readOnlyMode: dashboard.readOnly }));
      await scope.register(serverAdapter.registerPlugin(), { prefix: '/dashboard' });
    }
    // Here, not on the root, so a request that matches no route meets the check above too.
    scope.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not_found', message: 'not found' }));
    scope.get('/healthz', () => ({ status: 'ok' }));
    scope.get('/readyz', async (_request, reply) => {
      const r = await readiness(redis);
      if (r.retryAfter !== undefined) void reply.header('retry-after', String(r.retryAfter));
      return reply.code(r.status).send(r.body);
    });
    scope.get('/metrics', async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.header('content-type', metrics.registry.contentType).send(text);
    });
  });
  if (dashboard !== undefined) {
    const deadLetters = new Queue(deadLetterQueueName(!mixesSlots(redis)), { connection: redis, prefix: config.queuePrefix });
    deadLetters.on('error', () => undefined);
    queues.push(deadLetters);
    addQueue(deadLetters);
  }
  const host = options.host ?? '0.0.0.0';
  const first = options.port ?? config.adminPort;
  const tries = options.explicitPort === true || first === 0 ? 1 : DEFAULT_PORT_TRIES;
  for (let i = 0; ; i += 1) {
    try {
      await app.listen({ port: first + i, host });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      if (i + 1 >= tries) {
        await app.close();
        throw new ConfigError(
          tries === 1
            ? `ADMIN_PORT ${first} is already in use on ${host}: choose another port, or leave ADMIN_PORT unset to take the next free one from 9464`
            : `ports ${first} to ${first + tries - 1} are all in use on ${host}: set ADMIN_PORT to a free port`,
        );
      }
    }
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : first;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    addLocation: (locationId) => {
      if (dashboard === undefined || queues.length > DASHBOARD_QUEUES) return;
      const queue = locationQueues.get(locationId);
      queues.push(queue);
      addQueue(queue);
    },
    close: async () => {
      await app.close();
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}

function isOpen(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  if (route === undefined) return false;
  // fastify answers HEAD for each GET route with the GET's handler.
  return OPEN_ROUTES.has(`${request.method === 'HEAD' ? 'GET' : request.method} ${route}`);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
