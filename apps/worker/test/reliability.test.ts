/**
 * What the worker promises when processes die: nothing accepted is lost, and a message known to
 * be delivered is not posted again.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, until, useHarness } from './harness.ts';

describe('worker reliability', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  /**
   * HighLevel records a request it received even when the client has died, and has no idempotency
   * key, so a killed worker can leave one duplicate per request it had in flight. With one request
   * in flight per process that is the bound, duplicates <= kills; with more, kills x in-flight.
   */
  it.each([
    [1, 3],
    [8, 2],
  ])(
    'workers SIGKILLed mid-run (%i in flight each): nothing lost, duplicates <= kills x in-flight',
    async (inFlight, processes) => {
      const h = await harness({ fake: { latency: { minMs: 5, maxMs: 30 }, recordBodies: false } });
      const messages = 300;
      await h.send(Array.from({ length: messages }, (_, i) => sms(i, i % 2 === 0 ? 'locA' : 'locB')));
      const env = { WORKER_CONCURRENCY: String(inFlight) };
      const workers = Array.from({ length: processes }, () => h.spawnWorker(env));
      let kills = 0;
      for (const target of [75, 150, 225]) {
        await until(() => h.fake.stats().accepted >= target, 60_000, `${target} deliveries`);
        const victim = workers.shift();
        const exited = once(victim as ChildProcess, 'exit');
        victim?.kill('SIGKILL');
        await exited;
        kills += 1;
        workers.push(h.spawnWorker(env));
      }
      // Jobs the killed workers held come back once their locks expire (stalled-job recovery).
      await h.settled(['locA', 'locB'], 60_000);
      const stats = h.fake.stats();
      const dead = await h.deadLettered();
      const distinct = new Set(h.fake.messages().map((m) => `${m.locationId}/${m.altId ?? ''}`));
      expect(dead).toEqual([]);
      expect(distinct.size).toBe(messages);
      expect(stats.accepted - distinct.size).toBe(stats.duplicateAltIds);
      expect(stats.duplicateAltIds).toBeLessThanOrEqual(kills * inFlight);
    },
    120_000,
  );

  it('a crash between the answer and job completion does not post again (the ledger)', async () => {
    const h = await harness();
    let crashes = 0;
    await h.worker({
      afterLedgerWrite: () => {
        crashes += 1;
        // As if the process died here: the job is not completed, and will run again.
        return crashes <= 2 ? Promise.reject(new Error('simulated crash after ledger write')) : Promise.resolve();
      },
    });
    await h.send([sms(1), sms(2)]);
    await h.settled(['locA']);
    expect(h.fake.stats()).toMatchObject({ accepted: 2, duplicateAltIds: 0 });
    const completed = await h.queue('locA').getCompleted();
    const skipped = completed.filter((j) => (j.returnvalue as { skipped?: boolean }).skipped === true);
    expect(skipped.length).toBeGreaterThanOrEqual(1);
  });

  it('a worker SIGKILLed right after the ledger write: its job is recovered and not posted again', async () => {
    const h = await harness({ fake: { recordBodies: false } });
    await h.send([sms(1)]);
    const victim = h.spawnWorker({ GHL_TEST_CRASH_AFTER_LEDGER_WRITE: '1' });
    const [code, signal] = (await once(victim, 'exit')) as [number | null, string | null];
    expect(signal ?? code).toBe('SIGKILL');
    expect(await h.pending('locA')).toBe(1); // still active, its lock held by a dead process
    const rescuer = h.spawnWorker({});
    await h.settled(['locA'], 30_000);
    expect(h.fake.stats()).toMatchObject({ accepted: 1, duplicateAltIds: 0 });
    const [done] = await h.queue('locA').getCompleted();
    expect(done?.returnvalue).toMatchObject({ skipped: true });
    rescuer.kill('SIGTERM');
    await once(rescuer, 'exit');
  }, 60_000);

  it('SIGTERM: stops taking jobs, finishes in-flight ones, exits 0 within the deadline', async () => {
    const h = await harness({ fake: { latency: { minMs: 700, maxMs: 800 } } });
    await h.send(Array.from({ length: 40 }, (_, i) => sms(i)));
    const worker = h.spawnWorker({ WORKER_CONCURRENCY: '4', SHUTDOWN_TIMEOUT_MS: '5000' });
    await until(() => h.fake.stats().requests >= 4, 10_000, 'requests in flight');
    const started = Date.now();
    worker.kill('SIGTERM');
    const [code] = (await once(worker, 'exit')) as [number | null];
    const took = Date.now() - started;
    expect(code).toBe(0);
    expect(took).toBeLessThan(5_000);
    // Every request that reached HighLevel was seen through: none is left active.
    const counts = await h.queue('locA').getJobCounts('active', 'completed');
    expect(counts.active).toBe(0);
    expect(counts.completed).toBe(h.fake.stats().accepted);
    expect(h.logs.join('')).toContain('"msg":"stopped"');
  }, 30_000);

  // A proxy in front of one Redis: on a cluster the same start-up runs, and is proven here.
  it.skipIf(redis.onCluster)(
    'SIGTERM while still starting: stops cleanly once started (exit 0, not killed by the signal)',
    async () => {
      const h = await harness();
      // Redis answers late: the worker's connections are held until the signal has arrived, so it
      // comes while the worker is starting (as when an orchestrator stops a process it just started).
      const target = new URL(redis.url);
      const held: Socket[] = [];
      let released = false;
      const proxy = createServer((client) => {
        const forward = () => {
          const upstream = connect(Number(target.port || 6379), target.hostname);
          client.pipe(upstream).pipe(client);
          const drop = () => (client.destroy(), upstream.destroy());
          client.on('error', drop).on('close', drop);
          upstream.on('error', drop).on('close', drop);
        };
        if (released) forward();
        else held.push(Object.assign(client, { forward }));
      });
      proxy.listen(0, '127.0.0.1');
      await once(proxy, 'listening');
      const port = (proxy.address() as AddressInfo).port;
      try {
        const worker = h.spawnWorker({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_CLUSTER_NODES: '' });
        await until(() => held.length > 0, 20_000, 'the starting worker to connect to Redis');
        worker.kill('SIGTERM');
        await sleep(300);
        expect(worker.exitCode).toBeNull();
        released = true;
        for (const socket of held) (socket as Socket & { forward: () => void }).forward();
        const [code, signal] = (await once(worker, 'exit')) as [number | null, string | null];
        expect({ code, signal }).toEqual({ code: 0, signal: null });
        expect(h.logs.join('')).toContain('"msg":"stopped"');
      } finally {
        proxy.close();
        for (const socket of held) socket.destroy();
      }
    },
    30_000,
  );

  it('SIGTERM past the deadline: in-flight jobs are cut off, and taken again later', async () => {
    const h = await harness({ fake: { latency: { minMs: 3000, maxMs: 3000 } } });
    await h.send([sms(1)]);
    const worker = h.spawnWorker({ SHUTDOWN_TIMEOUT_MS: '300', HTTP_TIMEOUT_MS: '10000' });
    await until(() => h.fake.stats().requests >= 1, 10_000, 'a request in flight');
    const started = Date.now();
    worker.kill('SIGTERM');
    const [code] = (await once(worker, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(h.logs.join('')).toContain('shutdown deadline passed');
    // The cut-off job is taken again once its lock expires. HighLevel was still working on the
    // first request, so it may record two: the one duplicate the README warns of for a cut-off post.
    h.fake.configure({ latency: { minMs: 0, maxMs: 0 } });
    await h.worker();
    await h.settled(['locA'], 20_000);
    expect(await h.deadLettered()).toEqual([]);
    await until(() => h.fake.stats().accepted >= 1, 5_000, 'the delivery');
    expect(h.fake.stats().accepted).toBeLessThanOrEqual(2);
  }, 30_000);

  it('a second signal exits at once', async () => {
    const h = await harness({ fake: { latency: { minMs: 3000, maxMs: 3000 } } });
    await h.send([sms(1)]);
    const worker = h.spawnWorker({ SHUTDOWN_TIMEOUT_MS: '20000', HTTP_TIMEOUT_MS: '10000' });
    await until(() => h.fake.stats().requests >= 1, 10_000, 'a request in flight');
    worker.kill('SIGTERM');
    await sleep(200);
    worker.kill('SIGINT');
    const [code] = (await once(worker, 'exit')) as [number | null];
    expect(code).toBe(130);
  }, 30_000);
});
