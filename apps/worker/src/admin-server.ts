/**
 * The worker's admin endpoint on ADMIN_PORT: `/metrics` (Prometheus text), `/healthz` (alive),
 * `/readyz` (Redis answers), and the BullMQ dashboard (bull-board) at `/dashboard` behind basic
 * auth, only when DASHBOARD_USER and DASHBOARD_PASSWORD are both set.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifyBasicAuth from '@fastify/basic-auth';
import { readiness, type Config, type Logger } from '@ghl-ingest/queue';
import type { Queue } from 'bullmq';
import Fastify from 'fastify';
import type { Redis } from 'ioredis';
import type { WorkerMetrics } from './metrics.ts';

export interface AdminServer {
  url: string;
  /** A location this process now serves: shown on the dashboard. */
  addQueue(queue: Queue): void;
  close(): Promise<void>;
}

export async function startAdminServer(options: {
  config: Config;
  redis: Redis;
  metrics: WorkerMetrics;
  logger: Logger;
  queues: Queue[];
  port?: number;
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
      const board = createBullBoard({ queues: options.queues.map((q) => new BullMQAdapter(q)), serverAdapter });
      addQueue = (queue) => board.addQueue(new BullMQAdapter(queue));
      await scope.register(serverAdapter.registerPlugin(), { prefix: '/dashboard' });
    });
  }
  await app.listen({ port: options.port ?? config.adminPort, host: options.host ?? '0.0.0.0' });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    addQueue: (queue) => addQueue(queue),
    close: () => app.close(),
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
