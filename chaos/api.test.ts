/**
 * Chaos at HighLevel's end: an outage longer than several backoff steps, 429 storms (the limit
 * lowered without notice, another app spending the budget), and slow answers, resets and 201s
 * without a messageId, all while an import is delivered by several worker processes.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocationReader } from '@ghl-ingest/queue';
import { describe, expect, it } from 'vitest';
import { countLines, writeDataset } from './accounting.ts';
import { PREFIX, type Cluster } from './cluster.ts';
import { closeScenario, until, useCluster } from './support.ts';

const LOCATIONS = ['loc-north', 'loc-south', 'loc-east'];

/** Every line the workers logged, parsed. */
function workerLines(c: Cluster): Record<string, unknown>[] {
  return c.procs
    .filter((p) => p.name === 'worker')
    .flatMap((p) => readFileSync(p.log, 'utf8').split('\n'))
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('chaos: HighLevel misbehaves', () => {
  const cluster = useCluster();

  it('down (503) for longer than several backoff steps, then back: all delivered, nothing dead-lettered', async () => {
    const started = Date.now();
    // Three attempts a message: an outage charged to messages would dead-letter the backlog.
    const c = await cluster({ locations: LOCATIONS, api: { latency: { minMs: 5, maxMs: 25 } }, env: { GHL_MAX_ATTEMPTS: '3', WORKER_CONCURRENCY: '4' } });
    const data = writeDataset(c.dir, 'outage', 1200, LOCATIONS);
    c.spawnWorker();
    c.spawnWorker();
    const importer = c.ingest(['import', data.file]);
    await until(async () => (await c.api.stats()).accepted >= 300, 30_000, '300 deliveries');
    // 12 s: longer than the first four backoff steps together (1 + 2 + 4 + 8 s at most, 7.5 s on average).
    const outageMs = 12_000;
    await c.api.outage(outageMs);
    const outageEnds = Date.now() + outageMs;
    const before = await c.api.stats();
    await sleep(outageMs);
    const during = await c.api.stats();
    expect(await importer.exited).toBe(2);
    await until(async () => (await c.api.stats()).accepted > during.accepted, 40_000, 'delivery to resume');
    const resumedAfterMs = Date.now() - outageEnds;
    await c.settled();
    const refused = (during.byStatus['503'] ?? 0) - (before.byStatus['503'] ?? 0);
    const a = await closeScenario(c, [data], countLines(`${data.file}.rejects.ndjson`), {
      scenario: 'HighLevel down 12 s (503)',
      started,
      note: `${refused} requests met the 12 s outage (probes, not retries of the backlog); delivery resumed ${(resumedAfterMs / 1000).toFixed(1)} s after it ended`,
    });
    expect(a.deadLettered).toBe(0);
    expect(a.duplicates).toBe(0);
    // The outage was noticed and waited out, not retried message by message.
    expect(workerLines(c).some((l) => l.msg === 'HighLevel down: location waits')).toBe(true);
    expect(refused).toBeLessThan(100);
  });

  it('429 storms (limit lowered mid-run, another app spending the budget): nothing dead-lettered, the limiter adapts', async () => {
    const started = Date.now();
    const [lowered, shared] = ['loc-north', 'loc-south'] as const;
    const c = await cluster({ locations: [lowered, shared], api: { latency: { minMs: 5, maxMs: 25 } }, env: { WORKER_CONCURRENCY: '8' } });
    const data = writeDataset(c.dir, 'storm', 1200, [lowered, shared]);
    c.spawnWorker();
    c.spawnWorker();
    const importer = c.ingest(['import', data.file]);
    await until(async () => ((await c.api.stats()).acceptedByLocation[lowered] ?? 0) >= 150, 30_000, 'a first part delivered');
    // HighLevel lowers one location's limit to 40 a second without notice ...
    await c.api.configure({ perLocation: { [lowered]: { max: 40 } } });
    const changedAt = Date.now();
    // ... and another app spends 60 % of the other location's budget for five seconds.
    for (let i = 0; i < 25; i += 1) {
      await c.api.spend(shared, 12);
      await sleep(200);
    }
    const early = (await c.api.stats()).rateLimitedByLocation;
    expect(await importer.exited).toBe(2);
    await c.settled();
    const late = (await c.api.stats()).rateLimitedByLocation;
    // What the budget learned, as its holder last saved it (the configured max is higher).
    const [seen] = await new LocationReader(c.client, { prefix: PREFIX }).snapshot([lowered]);
    const learned = seen === undefined ? undefined : String(seen.budget.max);
    const a = await closeScenario(c, [data], countLines(`${data.file}.rejects.ndjson`), {
      scenario: '429 storms (limit lowered, rival spending)',
      started,
      note:
        `lowered location: ${early[lowered] ?? 0} x 429 in the ${Math.round((Date.now() - changedAt) / 1000)} s after the change, ` +
        `${(late[lowered] ?? 0) - (early[lowered] ?? 0)} after the first 5 s; learned max ${learned ?? 'none'}; ` +
        `shared location: ${late[shared] ?? 0} x 429 while a rival spent 60 % of it`,
    });
    expect(a.deadLettered).toBe(0);
    expect(a.duplicates).toBe(0);
    // Adapted: the lower limit was learned from HighLevel's headers, and once learned the storm stops.
    expect(learned).toBe('40');
    expect((late[lowered] ?? 0) - (early[lowered] ?? 0)).toBeLessThanOrEqual(5);
    const completed = await c.queue(lowered).getCompleted(0, -1);
    expect(Math.max(...completed.map((j) => j.attemptsMade))).toBe(1); // a 429 is never an attempt
  });

  it('slow answers (near and past the timeout), resets and 201s without messageId: classified as designed', async () => {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      api: {
        latency: { minMs: 5, maxMs: 25, slowProbability: 0.03, slowMs: 1300 }, // past HTTP_TIMEOUT_MS (1 s)
        faults: { drop: 0.03, dropAfterAccept: 0.03, empty201: 0.03 },
      },
      env: { WORKER_CONCURRENCY: '6', HTTP_TIMEOUT_MS: '1000' },
    });
    const data = writeDataset(c.dir, 'faults', 1200, LOCATIONS);
    c.spawnWorker();
    c.spawnWorker();
    const importer = c.ingest(['import', data.file]);
    await until(async () => (await c.api.stats()).accepted >= 600, 60_000, 'half delivered');
    await c.api.configure({ latency: { slowMs: 850 } }); // near the timeout, but inside it
    expect(await importer.exited).toBe(2);
    await c.settled();

    const lines = workerLines(c);
    const retries = lines.filter((l) => l.msg === 'retrying').map((l) => String(l.reason));
    const timeouts = retries.filter((r) => r.includes('ETIMEDOUT')).length;
    const resets = retries.filter((r) => /ECONNRESET|socket hang up/.test(r)).length;
    const suspect = retries.filter((r) => r.includes('without a messageId')).length;
    const slowDelivered = lines.filter((l) => l.msg === 'delivered' && Number(l.latencyMs) >= 800).length;
    const a = await closeScenario(c, [data], countLines(`${data.file}.rejects.ndjson`), {
      scenario: 'slow answers, resets, empty 201s',
      started,
      note: `retried ${timeouts} timeouts, ${resets} resets, ${suspect} empty 201s; ${slowDelivered} answers of 0.8-1 s delivered as usual`,
    });
    expect(timeouts).toBeGreaterThan(0);
    expect(resets).toBeGreaterThan(0);
    expect(suspect).toBeGreaterThan(0);
    expect(slowDelivered).toBeGreaterThan(0);
    // Only a message that met three empty 201s may be dead-lettered (as suspect); nothing else.
    for (const d of await c.deadLetters()) expect(d.class).toBe('suspect');
    // Every duplicate HighLevel holds is explained by an accepted copy whose answer was lost.
    expect(a.duplicates).toBeLessThanOrEqual(a.unanswered);
    expect(a.unanswered).toBeGreaterThan(0);
  });
});
