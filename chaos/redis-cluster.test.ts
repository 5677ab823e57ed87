/**
 * A Redis Cluster master SIGKILLed mid-run: 3 masters and 3 replicas (AOF everysec), reached by
 * REDIS_CLUSTER_NODES only; an import running, live messages arriving through the intake, two
 * workers delivering. The master that dies is the one serving the dispatcher's `{ready}` slot,
 * the structure every worker asks for work. Its replica takes over; nobody restarts anything.
 *
 * Replication is asynchronous: what the dying master acknowledged but had not yet sent to its
 * replica is gone. For the `{ready}` slot that is places in the ready set (the workers' repair
 * puts back every location with jobs, see location/repair.ts), for the imports' and
 * the other locations' slots on that master it is jobs (the importer notices the new run id and
 * reads its file again) and ledger entries (a delivery posted again), and for live messages it
 * is what the intake acknowledged in that moment: the scenario allows losing live messages
 * acknowledged in the second before the kill, and counts them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readImports } from '@ghl-ingest/queue';
import { describe, expect, it } from 'vitest';
import { account, countLines, writeDataset } from './accounting.ts';
import { importToEnd, LiveSender } from './clients.ts';
import { PREFIX } from './cluster.ts';
import { closeScenario, until, useCluster, writtenBackBy } from './support.ts';

const LOCATIONS = Array.from({ length: 12 }, (_, i) => `loc-${i}`);
const WORKERS = 2;

describe('chaos: Redis Cluster failover', () => {
  const cluster = useCluster();

  it('the master of the ready set SIGKILLed mid-import: its replica takes over, the product carries on by itself, nothing the failover spared is lost', async () => {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      redisCluster: true,
      api: { limits: { max: 2000, windowMs: 1000 }, latency: { minMs: 1, maxMs: 5 } },
      env: { GHL_RATE_LIMIT_MAX: '2000', WORKER_CONCURRENCY: '8' },
    });
    const data = writeDataset(c.dir, 'cluster-failover', 12_000, LOCATIONS);
    for (let i = 0; i < WORKERS; i += 1) c.spawnWorker();
    const intake = await c.startIntake();
    const live = new LiveSender(intake.url, c.env.INTAKE_TOKEN ?? '', LOCATIONS);
    await sleep(1_000);
    const importer = c.ingest(['import', data.file]);
    await until(async () => ((await readImports(c.client, PREFIX))[0]?.accepted ?? 0) >= 3000, 60_000, 'the import under way');
    const importState = (await readImports(c.client, PREFIX))[0]?.state;

    // The master serving the ready set's slot dies.
    const slot = Number(await c.client.call('CLUSTER', 'KEYSLOT', `${PREFIX}:{ready}`));
    const victim = await c.redisCluster.masterOf(slot);
    const deliveredAtKill = (await c.api.stats()).accepted;
    const killedAt = Date.now();
    await c.redisCluster.server(victim.port).kill();
    await c.redisCluster.waitUntilHealthy(30_000);
    const failoverMs = Date.now() - killedAt;

    const acceptedBefore = live.accepted.size;
    const { runs, readAgain } = await importToEnd(c, importer, data.file);
    await until(() => live.accepted.size > acceptedBefore + 20, 30_000, 'the intake to accept again');
    await live.stop();
    expect(c.workers()).toHaveLength(WORKERS); // the workers rode it out
    await c.settled(LOCATIONS, 120_000);

    const repairs = c
      .workerLogs('Redis changed (restart or failover)')
      .filter((r) => Date.parse(r.time) >= killedAt) // not the first check at start
      .map((r) => `${String(r.requeued)} of ${String(r.withWork)} put back`);
    const writtenBack = writtenBackBy(c);
    const first = await account(c, [data, live.dataset()], countLines(`${data.file}.rejects.ndjson`));
    const lostLive = first.lost.filter((id) => id.includes('/live-'));
    const ackedJustBefore = (id: string) => {
      const at = live.accepted.get(id.slice(id.indexOf('/') + 1))?.at ?? 0;
      return at >= killedAt - 1_000 && at <= killedAt + failoverMs;
    };
    const a = await closeScenario(
      c,
      [data, live.dataset()],
      countLines(`${data.file}.rejects.ndjson`),
      {
        scenario: 'Redis Cluster: the ready set master SIGKILLed (failover)',
        started,
        redisRestarts: 1,
        note:
          `master :${victim.port} killed after ${deliveredAtKill} deliveries, import ${importState ?? '?'}; cluster healthy again ${failoverMs} ms later; ` +
          `import: ${runs} run${runs === 1 ? '' : 's'}${readAgain ? ', file read again after the failover' : ''}; ` +
          `${live.accepted.size} live messages (${live.refused} refused while the slot moved), lost ${lostLive.length}; ` +
          `ready set repairs by the workers: ${repairs.length}; ledger entries written back by the workers: ${writtenBack}; ${first.duplicates} duplicates`,
      },
      // Only live messages acknowledged in the second before the kill (or during the failover) may be missing.
      ackedJustBefore,
    );
    console.log(
      `cluster failover: ${failoverMs} ms, ${a.delivered} delivered, ${lostLive.length} live lost, ${a.duplicates} duplicates, import runs ${runs}, repairs ${repairs.join(' | ')}`,
    );
    expect(importState).toBe('running');
    expect(a.lost.every((id) => id.includes('/live-'))).toBe(true); // the import lost nothing
  });
});
