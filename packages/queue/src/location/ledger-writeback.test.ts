import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { RedisCluster, RedisServer, until, useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { createRedis, redisRunId, whenReady } from '../connection.ts';
import { keysFor } from '../keys.ts';
import { WorkerLocations } from './index.ts';
import { LedgerWriteBack, writerKeys, type RestoreReport } from './ledger-writeback.ts';

describe('ledger entries written back after Redis lost them (a real redis-server restarted empty)', () => {
  const redis = useRedis();

  it('a message delivered before the loss is found in the ledger after it, even when asked while Redis was away', async () => {
    const server = await RedisServer.start(); // nothing on disk: a restart loses every write, as a lost AOF second does some
    const connection = createRedis(server.url, 'worker', `${redis.prefix}:restart`);
    const budget = () => ({ max: 100, windowMs: 10_000, daily: 200_000 });
    const s = new WorkerLocations(connection, {
      prefix: redis.prefix,
      limiter: { budget, inflightMs: 5_000 },
      ledgerTtlMs: 60_000,
    });
    const restored: number[] = [];
    const stop = s.watchForLoss((report) => restored.push(report.written));
    try {
      const delivered = async (key: string, messageId: string) => {
        expect((await s.beforePost('loc', key, undefined)).kind).toBe('go');
        await s.recordDelivered('loc', key, { messageId, at: Date.now() });
      };
      await delivered('k1', 'hl-1');
      await delivered('k2', 'hl-2');
      await until(async () => (await redisRunId(connection)) !== '', 5_000, 'the run id seen');

      await server.kill();
      await until(() => connection.status !== 'ready', 5_000, 'the client to notice');
      // Asked while Redis is away (a worker taking the job again): answered only once the entry is
      // back. (A check already sent when Redis died is resent first by the client: that is among
      // the requests in flight at a crash, which the README counts.)
      const asked = s.beforePost('loc', 'k1', undefined);
      await server.restart();
      expect(await asked).toMatchObject({ kind: 'delivered', entry: { messageId: 'hl-1' } });
      expect(await s.beforePost('loc', 'k2', undefined)).toMatchObject({ kind: 'delivered', entry: { messageId: 'hl-2' } });
      expect(restored).toEqual([2]);
      // Never delivered: not in the ledger, the message goes.
      expect((await s.beforePost('loc', 'k3', undefined)).kind).toBe('go');
      expect(await connection.pttl(keysFor(redis.prefix).ledger('loc', 'k1'))).toBeGreaterThan(50_000);
    } finally {
      stop();
      await connection.quit();
      await server.stop();
    }
  });
});

describe('after a loss, no worker reads the ledger before every worker wrote its entries back', () => {
  const redis = useRedis();

  /** A TCP proxy to `port` whose new connections can be held back: a worker that reconnects late. */
  async function holdingProxy(port: number) {
    const held: (() => void)[] = [];
    const sockets = new Set<Socket>();
    let holding = false;
    const server = createServer((client) => {
      sockets.add(client);
      const forward = () => {
        const upstream = connect(port, '127.0.0.1');
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const drop = () => (client.destroy(), upstream.destroy());
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
      };
      if (holding) held.push(forward);
      else forward();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
      hold: () => (holding = true),
      release: () => {
        holding = false;
        for (const forward of held.splice(0)) forward();
      },
      close: () => {
        server.close();
        for (const socket of sockets) socket.destroy();
      },
    };
  }

  it('a worker back first waits for the one that delivered the message in the lost second', async () => {
    const server = await RedisServer.start(); // nothing on disk: a restart loses every write
    const proxy = await holdingProxy(Number(new URL(server.url).port));
    const options = {
      prefix: redis.prefix,
      limiter: { budget: () => ({ max: 100, windowMs: 10_000, daily: 200_000 }), inflightMs: 5_000 },
      ledgerTtlMs: 60_000,
    };
    const slow = createRedis(proxy.url, 'worker', `${redis.prefix}:slow`); // delivered it, reconnects late
    const fast = createRedis(server.url, 'worker', `${redis.prefix}:fast`); // takes the job again
    const direct = createRedis(server.url, 'worker', `${redis.prefix}:direct`);
    const a = new WorkerLocations(slow, options);
    const b = new WorkerLocations(fast, options);
    const restored: number[] = [];
    const keys = writerKeys(redis.prefix);
    const stops = [a.watchForLoss((report) => restored.push(report.written))];
    try {
      await until(async () => (await direct.scard(keys.restored(await redisRunId(direct)))) === 1, 10_000, 'the first worker to have seen the run');
      stops.push(b.watchForLoss()); // it beats once more after its own first check: then it knows the first
      await until(async () => (await direct.scard(keys.restored(await redisRunId(direct)))) === 2, 10_000, 'both workers to have seen the run');
      await sleep(200);
      expect((await a.beforePost('loc', 'k1', undefined)).kind).toBe('go');
      await a.recordDelivered('loc', 'k1', { messageId: 'hl-1', at: Date.now() });

      proxy.hold();
      await server.kill();
      await until(() => slow.status !== 'ready' && fast.status !== 'ready', 5_000, 'both clients to notice');
      await server.restart(); // empty, as after a lost AOF second
      await until(() => fast.status === 'ready', 10_000, 'the fast worker back');
      // Asked by the worker back first: not answered from a ledger that still lacks the entry.
      let answer: string | undefined;
      const asked = b.beforePost('loc', 'k1', undefined).then((r) => {
        answer = r.kind;
        return r;
      });
      await until(async () => (await direct.scard(keys.restored(await redisRunId(direct)))) === 1, 10_000, 'the fast worker to wait');
      await sleep(300);
      expect(answer).toBeUndefined();
      proxy.release();
      expect(await asked).toMatchObject({ kind: 'delivered', entry: { messageId: 'hl-1' } });
      expect(restored).toEqual([1]);
    } finally {
      for (const stop of stops) stop();
      proxy.release();
      for (const c of [slow, fast, direct]) c.disconnect();
      proxy.close();
      await server.stop();
    }
  }, 30_000);
});

describe('what a write-back reports when an earlier attempt failed part way', () => {
  const redis = useRedis();

  it('counts the entries the failed attempt wrote back, not only those the attempt that completes finds missing', async () => {
    // A write that fails for one location only, as on a cluster whose other masters still answer
    // CLUSTERDOWN while the restarted one already takes writes: a user that may not write b's entry.
    const server = await RedisServer.start();
    const admin = createRedis(server.url, 'worker', `${redis.prefix}:admin`);
    const ledger = (id: string) => keysFor(redis.prefix).ledger(id, 'k');
    await admin.call('ACL', 'SETUSER', 'wb', 'on', '>wb', '+@all', `~${writerKeys(redis.prefix).writers}*`, `~${ledger('a')}`, `%R~${ledger('b')}`);
    const connection = createRedis(`redis://wb:wb@127.0.0.1:${server.port}`, 'worker', `${redis.prefix}:wb`);
    const writeBack = new LedgerWriteBack(connection, redis.prefix, 60_000);
    const reports: RestoreReport[] = [];
    const stop = writeBack.watchForLoss((report) => reports.push(report));
    try {
      await until(() => writeBack.runId !== undefined, 5_000, 'the run id seen');
      // Delivered, and then lost by Redis (never written here: the same to the write-back).
      for (const locationId of ['a', 'b'])
        await writeBack.writing({ locationId, key: 'k', entry: { messageId: `hl-${locationId}`, at: Date.now() } }, () => Promise.resolve());

      const done = writeBack.writeBackIfChanged('after-the-loss');
      let readable = false;
      void writeBack.readable().then(() => (readable = true));
      await until(async () => (await admin.exists(ledger('a'))) === 1, 5_000, "a's entry written back");
      // b's write fails: not done, tried again, and no ledger read goes meanwhile.
      await new Promise((r) => setTimeout(r, 300));
      expect(reports).toEqual([]);
      expect(readable).toBe(false);
      expect(writeBack.runId).not.toBe('after-the-loss');

      await admin.call('ACL', 'SETUSER', 'wb', 'allkeys');
      await done;
      await until(() => readable, 1_000, 'ledger reads let through');
      expect(reports.map((r) => r.written)).toEqual([2]);
      expect(await admin.exists(ledger('a'), ledger('b'))).toBe(2);
      expect(writeBack.runId).toBe('after-the-loss');
    } finally {
      stop();
      connection.disconnect();
      admin.disconnect();
      await server.stop();
    }
  });
});

describe('ledger entries written back on a Redis Cluster whose master restarted empty', () => {
  const redis = useRedis();

  it('the entries of the restarted master are written back, the others left alone', async () => {
    const cluster = await RedisCluster.start({ replicasPerMaster: 0, appendfsync: 'off' });
    const connection = createRedis(
      { redisUrl: 'redis://127.0.0.1:1', redisClusterNodes: cluster.nodesSetting.split(',') },
      'worker',
      `${redis.prefix}:cluster`,
    );
    const restored: number[] = [];
    let stop: (() => void) | undefined;
    try {
      await whenReady(connection, 10_000);
      const s = new WorkerLocations(connection, {
        prefix: redis.prefix,
        limiter: { budget: () => ({ max: 100, windowMs: 10_000, daily: 200_000 }), inflightMs: 5_000 },
        ledgerTtlMs: 60_000,
      });
      stop = s.watchForLoss((report) => restored.push(report.written));
      const locations = Array.from({ length: 12 }, (_, i) => `loc${i}`);
      for (const id of locations) {
        await s.beforePost(id, 'k', undefined);
        await s.recordDelivered(id, 'k', { messageId: `hl-${id}`, at: Date.now() });
      }
      await s.repairAfterLoss(); // as a worker does at start: the masters' run ids are seen
      const ledger = (id: string) => keysFor(redis.prefix).ledger(id, 'k');
      const victim = await cluster.masterOf(Number(await connection.call('CLUSTER', 'KEYSLOT', ledger('loc0'))));
      const onVictim: string[] = [];
      for (const id of locations)
        if ((await cluster.masterOf(Number(await connection.call('CLUSTER', 'KEYSLOT', ledger(id))))).port === victim.port) onVictim.push(id);

      await cluster.server(victim.port).kill();
      // Delivered while its master is down: HighLevel has it, the settle fails.
      await s.beforePost('loc0', 'late', undefined).catch(() => undefined);
      await expect(s.recordDelivered('loc0', 'late', { messageId: 'hl-late', at: Date.now() })).rejects.toThrow();
      await cluster.server(victim.port).restart(); // nothing on disk: it comes back empty, with a new run id
      await cluster.waitUntilHealthy();
      // The client's slot refresh, or a worker's check every 10 s, finds the new run id.
      await until(
        async () => restored.length > 0 || ((await s.repairAfterLoss().catch(() => undefined)) !== undefined && restored.length > 0),
        10_000,
        'the write-back',
      );
      // Its own entries, and the one whose settle failed (unless its own retry wrote it first).
      // On failure: what was written back, what the restarted master held, and which keys are there now.
      const why = JSON.stringify({
        restored,
        victim: victim.port,
        onVictim,
        present: await Promise.all(locations.map(async (id) => [id, (await connection.exists(ledger(id))) === 1])),
      });
      expect(restored, why).toHaveLength(1);
      expect(restored[0], why).toBeGreaterThanOrEqual(onVictim.length);
      expect(restored[0]).toBeLessThanOrEqual(onVictim.length + 1);
      for (const id of locations) expect(await s.beforePost(id, 'k', undefined)).toMatchObject({ kind: 'delivered', entry: { messageId: `hl-${id}` } });
      expect(await s.beforePost('loc0', 'late', undefined)).toMatchObject({ kind: 'delivered', entry: { messageId: 'hl-late' } });
    } finally {
      stop?.();
      await connection.quit().catch(() => connection.disconnect());
      await cluster.stop();
    }
  }, 60_000);
});
