/**
 * The worker's admin endpoint on ADMIN_PORT: `/metrics` (Prometheus text), `/healthz` (alive),
 * `/readyz` (Redis answers), and the BullMQ dashboard (bull-board) at `/dashboard` behind basic
 * auth, only when DASHBOARD_USER and DASHBOARD_PASSWORD are both set. The dashboard shows the
 * dead-letter queue and the locations this process serves, read-only unless
 * DASHBOARD_ALLOW_CHANGES=true (dead letters are fixed and redriven with `ingest dlq`).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifyBasicAuth from '@fastify/basic-auth';
import { ConfigError, deadLetterQueueName, locationQueueName, mixesSlots, readiness, type Config, type Logger } from '@ghl-ingest/queue';
import { Queue } from 'bullmq';
import Fastify from 'fastify';
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
  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const r = await readiness(redis);
    if (r.retryAfter !== undefined) void reply.header('retry-after', String(r.retryAfter));
    return reply.code(r.status).send(r.body);
  });
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.header('content-type', metrics.registry.contentType).send(text);
  });

  const queues: Queue[] = [];
  let addQueue: (queue: Queue) => void = () => undefined;
  const dashboard = config.dashboard;
  if (dashboard !== undefined) {
    const user = digest(dashboard.user);
    const password = digest(dashboard.password);
    await app.register(async (scope) => {
      await scope.register(fastifyBasicAuth, {
        authenticate: { realm: 'ghl-ingest' },
        validate: async (u: string, p: string) => {
          // Both compared in full, in constant time, whichever is wrong.
          const ok = timingSafeEqual(digest(u), user) && timingSafeEqual(digest(p), password);
          if (!ok) throw new Error('wrong credentials');
          return Promise.resolve();
        },
      });
      scope.addHook('onRequest', scope.basicAuth);
      const serverAdapter = new FastifyAdapter();
      serverAdapter.setBasePath('/dashboard');
      const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'ghl-ingest' } } });
      addQueue = (queue) => board.addQueue(new BullMQAdapter(queue, { readOnlyMode: dashboard.readOnly }));
      await scope.register(serverAdapter.registerPlugin(), { prefix: '/dashboard' });
    });
  }
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
      const queue = new Queue(locationQueueName(locationId), { connection: redis, prefix: config.queuePrefix });
      queue.on('error', () => undefined);
      queues.push(queue);
      addQueue(queue);
    },
    close: async () => {
      await app.close();
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
