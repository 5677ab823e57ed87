/**
 * The admin server's credential check follows the route a request matched, whatever the URL's
 * spelling: no spelling of a dashboard route without the dashboard's credentials reaches
 * bull-board (all 401, a path that names no route too), so a dead letter stays where it is even with
 * DASHBOARD_ALLOW_CHANGES=true.
 */
import { deadLetterQueueName } from '@ghl-ingest/queue';
import { pathSpellings, rawRequest, useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { useHarness } from './harness.ts';

describe('admin routes and the dashboard credentials', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  it('no spelling of a dashboard route gets past basic auth', async () => {
    const h = await harness({ env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'dash-secret', DASHBOARD_ALLOW_CHANGES: 'true' } });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    const base = worker.admin?.url ?? '';
    const name = deadLetterQueueName(redis.onCluster);
    const deadLetters = new Queue(name, { connection: h.redis, prefix: h.config.queuePrefix });
    await deadLetters.add('dead', { note: 'must survive' });
    const routes: [string, string][] = [
      ['GET', '/dashboard'],
      ['GET', '/dashboard/api/queues'],
      ['GET', '/dashboard/api/redis/stats'],
      ['PUT', `/dashboard/api/queues/${encodeURIComponent(name)}/empty`],
      ['PUT', `/dashboard/api/queues/${encodeURIComponent(name)}/clean/waiting`],
      ['PUT', `/dashboard/api/queues/${encodeURIComponent(name)}/obliterate`],
    ];
    const wrong = ['ops:nope', 'nobody:dash-secret', 'OPS:dash-secret', 'ops:', ':dash-secret', 'ops:dash-secret:'].map(
      (pair) => `Basic ${Buffer.from(pair).toString('base64')}`,
    );
    const answered = new Map<string, number>();
    for (const [method, route] of routes) {
      for (const path of pathSpellings(route)) {
        for (const authorization of [undefined, ...wrong, 'Bearer dash-secret', 'Basic']) {
          const res = await rawRequest(base, { method, path, ...(authorization === undefined ? {} : { headers: { authorization } }) });
          answered.set(`${method} ${path} ${authorization ?? '-'}`, res.status);
        }
      }
    }
    expect([...answered].filter(([, status]) => status !== 401)).toEqual([]);
    expect(await deadLetters.getWaitingCount()).toBe(1);
    // A path that names no route needs the credentials too: a 401 says nothing about what exists.
    expect((await rawRequest(base, { method: 'GET', path: '/no-such-route' })).status).toBe(401);

    // The open routes answer without credentials; the dashboard still works with them.
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await rawRequest(base, { method: 'GET', path })).status).toBe(200);
    const auth = { authorization: `Basic ${Buffer.from('ops:dash-secret').toString('base64')}` };
    const emptied = await rawRequest(base, { method: 'PUT', path: `/dashboard/api/queues/${encodeURIComponent(name)}/empty`, headers: auth });
    expect(emptied.status).toBe(200);
    expect(await deadLetters.getWaitingCount()).toBe(0);
    await deadLetters.close();
  });
});
