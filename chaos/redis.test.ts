/**
 * Redis crashing mid-run, with its append-only file on: `appendfsync always` and `everysec`.
 *
 * Killing redis-server loses nothing under either policy: Redis write()s the AOF before it replies,
 * and the kernel keeps what was written when a process dies. What `everysec` risks is the host
 * going down (power, kernel) before the once-a-second fsync: up to a second of acknowledged writes.
 * The `everysec` run simulates exactly that worst case: Redis is killed and its AOF cut back to the
 * size it had one second earlier, then it restarts. The `always` run is a plain crash: with
 * `always`, Redis fsyncs before it replies, so even a host crash keeps all it acknowledged.
 */
import { statSync, truncateSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readImports } from '@ghl-ingest/queue';
import { describe, expect, it } from 'vitest';
import { account, countLines, writeDataset } from './accounting.ts';
import { importToEnd, LiveSender } from './clients.ts';
import { PREFIX } from './cluster.ts';
import { closeScenario, until, useCluster, writtenBackBy } from './support.ts';

const LOCATIONS = ['loc-north', 'loc-south', 'loc-east'];
const WORKERS = 2;
const CONCURRENCY = 8;

/** The AOF's size, sampled every 20 ms, to cut it back as a host crash would. */
class AofSampler {
  readonly samples: { at: number; size: number }[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(file: string) {
    this.#timer = setInterval(() => {
      this.samples.push({ at: Date.now(), size: statSync(file).size });
    }, 20);
  }

  /** The last sample taken at least `ms` before `t`. */
  before(t: number, ms: number): { at: number; size: number } {
    const s = this.samples.filter((x) => x.at <= t - ms).at(-1);
    if (s === undefined) throw new Error('no AOF sample that old');
    return s;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

describe('chaos: Redis restarts', () => {
  const cluster = useCluster();

  async function crashRun(appendfsync: 'always' | 'everysec') {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      appendfsync,
      api: { limits: { max: 2000, windowMs: 1000 }, latency: { minMs: 1, maxMs: 5 } },
      env: { GHL_RATE_LIMIT_MAX: '2000', WORKER_CONCURRENCY: String(CONCURRENCY) },
    });
    const data = writeDataset(c.dir, `redis-${appendfsync}`, 15_000, LOCATIONS);
    for (let i = 0; i < WORKERS; i += 1) c.spawnWorker();
    const intake = await c.startIntake();
    const live = new LiveSender(intake.url, c.env.INTAKE_TOKEN ?? '', LOCATIONS);
    const aofFile = c.redis.appendOnlyFile();
    if (aofFile === undefined) throw new Error('no AOF');
    const aof = new AofSampler(aofFile);
    await sleep(1_500);
    const importer = c.ingest(['import', data.file]);
    await until(async () => ((await readImports(c.client, PREFIX))[0]?.accepted ?? 0) >= 4000, 30_000, 'the import under way');
    const importState = (await readImports(c.client, PREFIX))[0]?.state;

    // The crash.
    await c.redis.kill();
    const crashedAt = Date.now();
    aof.stop();
    let cut: { at: number; size: number } | undefined;
    if (appendfsync === 'everysec') {
      // The host went down too: what was not yet fsynced (at most the last second) is gone.
      cut = aof.before(crashedAt, 1_000);
      truncateSync(aofFile, cut.size);
    }
    await sleep(1_000);
    await c.redis.restart();
    const acceptedBefore = live.accepted.size;
    const { runs, readAgain } = await importToEnd(c, importer, data.file);
    await until(() => live.accepted.size > acceptedBefore + 20, 30_000, 'the intake to accept again');
    await live.stop();
    expect(c.workers()).toHaveLength(WORKERS); // the workers rode it out
    await c.settled();

    // A live message acknowledged in the lost second is gone for good; an import's lost batches
    // are enqueued again by the importer itself, which notices that Redis restarted under it.
    const first = await account(c, [data, live.dataset()], countLines(`${data.file}.rejects.ndjson`));
    const lostLive = first.lost.filter((id) => id.includes('/live-'));
    const lostImport = first.lost.length - lostLive.length;
    const ackedAfterCut = (id: string) => cut !== undefined && (live.accepted.get(id.slice(id.indexOf('/') + 1))?.at ?? 0) >= cut.at;
    const a = await closeScenario(
      c,
      [data, live.dataset()],
      countLines(`${data.file}.rejects.ndjson`),
      {
        scenario: `Redis crash, appendfsync ${appendfsync}${appendfsync === 'everysec' ? ' + host crash' : ''}`,
        started,
        redisRestarts: 1,
        note:
          `import ${importState ?? '?'} at the crash, ${runs} run${runs === 1 ? '' : 's'}${readAgain ? ', file read again after the restart' : ''}; ` +
          `${live.accepted.size} live messages (${live.refused} refused with 503 while Redis was away); ` +
          `lost: ${lostLive.length} live, ${lostImport} import rows` +
          (cut === undefined
            ? ''
            : `; AOF cut back ${Math.round((crashedAt - cut.at) / 10) / 100} s; ${writtenBackBy(c)} ledger entries of the lost second written back by the workers; ` +
              `${first.duplicates} duplicates`),
      },
      // everysec: only what was acknowledged after the last fsync may be lost.
      appendfsync === 'everysec' ? ackedAfterCut : () => false,
    );
    return { a, lostLive, lostImport, importState };
  }

  it('appendfsync always: a Redis crash mid-run loses nothing the producers reported accepted', async () => {
    const { a, lostLive, lostImport, importState } = await crashRun('always');
    expect(importState).toBe('running');
    expect(lostLive).toEqual([]);
    expect(lostImport).toBe(0);
    expect(a.lost).toEqual([]);
    // In flight at the crash: a post whose ledger write had to wait for Redis may be taken again.
    expect(a.duplicates).toBeLessThanOrEqual(WORKERS * CONCURRENCY);
  });

  it('appendfsync everysec with the host crashing too: only live messages of the last second are lost; the import recovers its own', async () => {
    const { a, lostImport, importState } = await crashRun('everysec');
    expect(importState).toBe('running');
    // Only live messages acknowledged after the last fsync may be missing (closeScenario checked
    // that each was); the import read its file again and lost nothing.
    expect(a.lost.every((id) => id.includes('/live-'))).toBe(true);
    expect(lostImport).toBe(0);
    // The workers outlived Redis: the ledger entries it lost are written back from their memory,
    // by every worker, before any of them reads the ledger again. A post in flight at the crash is
    // remembered before its ledger write is sent, so it is written back too.
    expect(a.duplicates).toBe(0);
  });
});
