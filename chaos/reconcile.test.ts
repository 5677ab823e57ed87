/**
 * Unknown outcomes, side by side with GHL_RECONCILE on and off: HighLevel records some messages
 * and then resets the connection or answers after the client's timeout, and workers are SIGKILLed
 * with requests in flight. With reconcile on, each such message is looked up by its altId before
 * it is posted again: no duplicate. With it off, the duplicates HighLevel holds are counted, each
 * explained by an accepted copy whose answer was lost (what the suite measured before). A lookup
 * past the location's lookup budget waits for it (the message goes later), never posts blind.
 */
import { describe, expect, it } from 'vitest';
import { countLines, writeDataset } from './accounting.ts';
import { closeScenario, until, useCluster } from './support.ts';

const LOCATIONS = ['rc-1', 'rc-2', 'rc-3', 'rc-4', 'rc-5', 'rc-6'];

describe('chaos: unknown outcomes, looked up before posting again', () => {
  const cluster = useCluster();

  it.each(['on', 'off'] as const)(
    'GHL_RECONCILE=%s: resets and slow answers after recording, workers SIGKILLed mid-flight',
    async (reconcile) => {
      const started = Date.now();
      const c = await cluster({
        locations: LOCATIONS,
        api: {
          latency: { minMs: 5, maxMs: 25 },
          faults: { dropAfterAccept: 0.03, slowAfterAccept: 0.02, slowAfterAcceptMs: 1_300 }, // past HTTP_TIMEOUT_MS (1 s)
        },
        env: { GHL_RECONCILE: reconcile, WORKER_CONCURRENCY: '4', HTTP_TIMEOUT_MS: '1000' },
      });
      const data = writeDataset(c.dir, `reconcile-${reconcile}`, 1_800, LOCATIONS);
      for (let i = 0; i < 3; i += 1) c.spawnWorker();
      const importer = c.ingest(['import', data.file]);
      let kills = 0;
      for (const f of [0.25, 0.5, 0.75]) {
        const target = Math.round(data.valid.size * (f + Math.random() * 0.05));
        await until(async () => (await c.api.stats()).accepted >= target, 90_000, `${target} deliveries`);
        await c.replaceRandomWorker();
        kills += 1;
      }
      expect(await importer.exited).toBe(2);
      await c.settled(LOCATIONS, 120_000);
      const stats = await c.api.stats();
      const a = await closeScenario(c, [data], countLines(`${data.file}.rejects.ndjson`), {
        scenario: `unknown outcomes, reconcile ${reconcile}`,
        started,
        kills,
        note: `${stats.acceptedUnanswered} accepted copies whose answer was lost; ${stats.reads} lookup reads of ${stats.requests} requests (${((100 * stats.reads) / Math.max(1, stats.requests)).toFixed(1)} %)`,
      });
      expect(a.unanswered).toBeGreaterThan(0); // the faults happened
      if (reconcile === 'on') {
        expect(a.duplicates).toBe(0);
        expect(stats.reads).toBeGreaterThan(0);
      } else {
        expect(stats.reads).toBe(0);
        expect(a.duplicates).toBeGreaterThan(0);
        expect(a.duplicates).toBeLessThanOrEqual(a.unanswered + kills * 4);
      }
    },
    240_000,
  );
});
