/**
 * Many locations: the dispatcher serves more busy locations than a process holds at once, in
 * turns; releases what is idle; takes a new location's first message promptly while thousands
 * are busy; and several `pnpm worker` with default settings share one host.
 */
import { once } from 'node:events';
import { readySetKeys, registryKey } from '@ghl-ingest/queue';
import { RedisServer, useRedis } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Harness, sms, until, useHarness, type HarnessRedis } from './harness.ts';

describe('many locations', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  it('more busy locations than a process holds: all delivered, in fair turns', async () => {
    const locations = Array.from({ length: 30 }, (_, i) => `loc${String(i).padStart(2, '0')}`);
    const perLocation = 24;
    const h = await harness({
      fake: { tokens: null, latency: { minMs: 15, maxMs: 25 } },
      // Two requests in flight, four jobs active: at most four locations held at once.
      env: { WORKER_CONCURRENCY: '2' },
    });
    h.tokenPerLocation(locations);
    for (const id of locations) await h.send(Array.from({ length: perLocation }, (_, i) => sms(i, id)));
    await h.worker({ sliceMs: 60 });
    const total = locations.length * perLocation;
    await until(() => h.fake.stats().accepted >= total, 60_000, 'every message');
    expect(await h.deadLettered()).toEqual([]);
    const order = h.fake.messages().map((m) => m.locationId);
    expect(order).toHaveLength(total);
    // Turns: every location's first message arrives early (no location waits for another's
    // backlog), and at the halfway point every location has had a fair share.
    const firstAt = locations.map((id) => order.indexOf(id));
    expect(Math.max(...firstAt)).toBeLessThan(total / 4);
    const half = order.slice(0, total / 2);
    const shares = locations.map((id) => half.filter((l) => l === id).length);
    // On failure: where the weakest location's messages fell, and what the worker warned of.
    const weakest = locations[shares.indexOf(Math.min(...shares))] as string;
    const why = JSON.stringify({
      shares,
      weakestAt: h.fake.messages().flatMap((m, i) => (m.locationId === weakest ? [[i, m.receivedAt]] : [])),
      startedAt: h.fake.messages()[0]?.receivedAt,
      warnings: h.logs.filter((l) => l.includes('"level":40')).slice(0, 5),
    });
    expect(Math.min(...shares), why).toBeGreaterThanOrEqual(perLocation / 4);
    expect(Math.max(...shares)).toBeLessThanOrEqual((perLocation * 3) / 4);
  }, 90_000);

  it('a new location is served promptly while a thousand others are busy', async () => {
    const h = await harness({ fake: { tokens: null, latency: { minMs: 20, maxMs: 60 } } });
    const busy = Array.from({ length: 1000 }, (_, i) => `busy${i}`);
    h.tokenPerLocation([...busy, 'newcomer']);
    await h.send(busy.flatMap((id) => [sms(1, id), sms(2, id), sms(3, id), sms(4, id)]));
    await h.worker();
    await until(() => h.fake.stats().accepted >= 200, 20_000, 'the backlog under way');
    const sent = Date.now();
    await h.send([sms(1, 'newcomer')], 'live');
    await until(() => h.fake.messages({ locationId: 'newcomer' }).length === 1, 10_000, "the newcomer's message");
    const took = Date.now() - sent;
    // Live messages go first among due locations: far sooner than the backlog takes.
    expect(took).toBeLessThan(1_500);
    expect(h.fake.stats().accepted).toBeLessThan(4000);
  }, 90_000);

  it('two `pnpm worker` with default settings on one host: both serve, each on its own admin port', async () => {
    // One request in flight, two jobs active each: neither process can hold every location.
    const h = await harness({ env: { WORKER_LOCK_MS: '5000', WORKER_CONCURRENCY: '1' } });
    // As a user starts them: no ADMIN_PORT, so 9464 and then the next free port.
    const workers = [h.spawnWorker({}, ['ADMIN_PORT']), h.spawnWorker({}, ['ADMIN_PORT'])];
    await until(() => h.logs.join('').split('"worker started"').length - 1 === 2, 15_000, 'both workers started');
    const urls = [...h.logs.join('').matchAll(/"admin":"(http:\/\/[^"]+)"/g)].map((m) => m[1] as string);
    expect(new Set(urls).size).toBe(2);
    for (const url of urls) expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const locations = ['locA', 'locB', 'locC'] as const;
    await h.send(Array.from({ length: 60 }, (_, i) => sms(i, locations[i % 3])));
    await h.settled([...locations]);
    expect(h.fake.stats()).toMatchObject({ accepted: 60, duplicateAltIds: 0 });
    const pids = new Set(
      h.logs
        .join('')
        .split('\n')
        .filter((l) => l.includes('"msg":"delivered"'))
        .map((l) => (JSON.parse(l) as { pid: number }).pid),
    );
    expect(pids.size).toBe(2);
    for (const w of workers) {
      w.kill('SIGTERM');
      const [code] = (await once(w, 'exit')) as [number];
      expect(code).toBe(0);
    }
  }, 60_000);

  it('an explicitly set ADMIN_PORT that is taken stops the worker with a clear message', async () => {
    const h = await harness();
    const first = h.spawnWorker({}, ['ADMIN_PORT']);
    await until(() => h.logs.join('').includes('"worker started"'), 15_000, 'the first worker');
    const port = /"admin":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(h.logs.join(''))?.[1] ?? '';
    const second = h.spawnWorker({ ADMIN_PORT: port });
    const [code] = (await once(second, 'exit')) as [number];
    expect(code).toBe(1);
    expect(h.logs.join('')).toContain(`ADMIN_PORT ${port} is already in use`);
    first.kill('SIGTERM');
    await once(first, 'exit');
  }, 30_000);
});

describe('idle locations cost nothing', () => {
  it('a thousand known, idle locations: no lease, nothing due, a few Redis commands a second', async () => {
    // A Redis of this test's own, so that its command count is this worker's alone.
    const server = await RedisServer.start();
    const admin = new Redis(server.url);
    const ctx: HarnessRedis = {
      prefix: 't-idle',
      env: { REDIS_URL: server.url, QUEUE_PREFIX: 't-idle' },
      target: { redisUrl: server.url, redisClusterNodes: undefined },
    };
    const h = await Harness.create(ctx, { fake: { tokens: null } });
    try {
      const locations = Array.from({ length: 1000 }, (_, i) => `idle${i}`);
      h.tokenPerLocation(locations);
      await h.send(locations.map((id) => sms(1, id)));
      const worker = await h.worker();
      await until(() => h.fake.stats().accepted === 1000, 30_000, 'every location delivered once');
      // A lane leaves the process's list before its turn's end reaches Redis: wait for Redis to say so.
      const keys = readySetKeys(ctx.prefix);
      await until(async () => worker.dispatcher.held.length === 0 && (await admin.hlen(keys.leases)) === 0, 10_000, 'every lease given back');
      expect(await admin.zcard(keys.ready)).toBe(0);
      expect(await admin.scard(registryKey(ctx.prefix))).toBe(1000);

      const commands = async () => Number(/total_commands_processed:(\d+)/.exec(await admin.info('stats'))?.[1]);
      const before = await commands();
      await new Promise((r) => setTimeout(r, 5_000));
      // One claim a second (the fallback to a missed wake-up: a script and the 4 commands it runs,
      // which Redis counts too), whatever the number of locations.
      const perSecond = ((await commands()) - before - 1) / 5;
      expect(perSecond).toBeLessThanOrEqual(7);
      // Connections: the worker's shared one and its subscriber, not one per location.
      const names = ((await admin.client('LIST')) as string).match(/name=t-idle:worker\S*/g) ?? [];
      expect(names.sort()).toEqual(['name=t-idle:worker', 'name=t-idle:worker-subscriber']);
    } finally {
      await h.close();
      await admin.quit();
      await server.stop();
    }
  }, 60_000);
});
