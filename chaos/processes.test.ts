/**
 * Chaos among the product's own processes: workers SIGKILLed at random moments, the importer
 * SIGKILLed mid-file and run again, a location's token revoked mid-run and replaced.
 */
import { readImports } from '@ghl-ingest/queue';
import { describe, expect, it } from 'vitest';
import { countLines, writeDataset } from './accounting.ts';
import { PREFIX } from './cluster.ts';
import { closeScenario, until, useCluster } from './support.ts';

const LOCATIONS = ['loc-north', 'loc-south', 'loc-east'];

describe('chaos: processes', () => {
  const cluster = useCluster();

  it('workers SIGKILLed at random moments during a multi-location import: nothing lost, duplicates <= kills', async () => {
    const started = Date.now();
    const c = await cluster({ locations: LOCATIONS, api: { latency: { minMs: 5, maxMs: 25 } } });
    const data = writeDataset(c.dir, 'kills', 1500, LOCATIONS);
    // One request in flight per process: each kill can cost at most one duplicate (see Guarantees).
    const env = { WORKER_CONCURRENCY: '1' };
    for (let i = 0; i < 3; i += 1) c.spawnWorker(env);
    const importer = c.ingest(['import', data.file]);
    // Four kills at random points of the run, each of a random worker, each replaced at once.
    const targets = [0.15, 0.35, 0.55, 0.75].map((f) => Math.round(data.valid.size * (f + Math.random() * 0.1)));
    let kills = 0;
    for (const target of targets) {
      await until(async () => (await c.api.stats()).accepted >= target, 60_000, `${target} deliveries`);
      await c.replaceRandomWorker(env);
      kills += 1;
    }
    expect(await importer.exited).toBe(2); // 2: some rows rejected
    await c.settled();
    const rejected = countLines(`${data.file}.rejects.ndjson`);
    expect(rejected).toBe(data.invalid);
    const a = await closeScenario(c, [data], rejected, { scenario: 'workers SIGKILLed', started, kills });
    expect(a.deadLettered).toBe(0);
    expect(a.duplicates).toBeLessThanOrEqual(kills);
  }, 150_000);

  it('the importer SIGKILLed mid-file and run again: every valid row enqueued exactly once', async () => {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      api: { limits: { max: 5000, windowMs: 1000 } },
      env: { GHL_RATE_LIMIT_MAX: '5000', WORKER_CONCURRENCY: '16' },
    });
    const data = writeDataset(c.dir, 'reimport', 20_000, LOCATIONS);
    c.spawnWorker();
    c.spawnWorker();
    const first = c.ingest(['import', data.file]);
    // Killed once a few batches are in, well before the end of the file.
    await until(async () => ((await readImports(c.client, PREFIX))[0]?.accepted ?? 0) >= 3000, 30_000, 'three batches');
    expect(await c.kill(first)).toBe('SIGKILL');
    const [cut] = await readImports(c.client, PREFIX);
    expect(cut?.state).toBe('running'); // what a killed import leaves: the last checkpoint
    expect(cut?.accepted).toBeLessThan(data.valid.size);

    const again = await c.ingestToEnd(['import', data.file]);
    expect(again.code).toBe(2);
    expect(again.output).toMatch(/resumed an interrupted import after line \d+/);
    await c.settled();
    const [done] = await readImports(c.client, PREFIX);
    // Counted once each: the resumed run picked up exactly where the checkpoint was.
    expect(done).toMatchObject({ state: 'done', accepted: data.valid.size, rejected: data.invalid });
    const rejected = countLines(`${data.file}.rejects.ndjson`);
    expect(rejected).toBe(data.invalid);
    const a = await closeScenario(c, [data], rejected, { scenario: 'importer SIGKILLed, run again', started, kills: 1 });
    expect(a.duplicates).toBe(0);
    expect(a.deadLettered).toBe(0);
  }, 150_000);

  it("a location's token revoked mid-run: it pauses, the others finish; a new token resumes it", async () => {
    const started = Date.now();
    const c = await cluster({ locations: LOCATIONS, api: { latency: { minMs: 5, maxMs: 25 } }, env: { WORKER_CONCURRENCY: '4' } });
    const data = writeDataset(c.dir, 'revoked', 1200, LOCATIONS);
    c.spawnWorker();
    c.spawnWorker();
    const importer = c.ingest(['import', data.file]);
    await until(async () => (await c.api.stats()).accepted >= 200, 30_000, '200 deliveries');
    const [revoked, ...others] = LOCATIONS as [string, ...string[]];
    await c.api.configure({ tokens: { [c.tokens[revoked] as string]: null } });
    expect(await importer.exited).toBe(2);

    await until(() => c.queue(revoked).isPaused(), 20_000, `${revoked} to pause`);
    await c.settled(others);
    const byLocation = (await c.api.stats()).acceptedByLocation;
    for (const loc of others) expect(byLocation[loc]).toBe([...data.valid.values()].filter((l) => l === loc).length);
    expect(await c.pending(revoked)).toBeGreaterThan(0);
    expect(await c.deadLetters()).toEqual([]);
    const status = await c.ingestToEnd(['status', '--json']);
    expect(status.output).toMatch(/token rejected|401/);

    await c.rotateToken(revoked, 'ghl-secret-rotated-9c41b7');
    await c.settled(LOCATIONS, 60_000);
    const rejected = countLines(`${data.file}.rejects.ndjson`);
    const a = await closeScenario(c, [data], rejected, { scenario: 'token revoked, then replaced', started });
    expect(a.deadLettered).toBe(0);
    expect(a.duplicates).toBe(0);
  }, 150_000);
});
