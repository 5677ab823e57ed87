/**
 * A worker paused (SIGSTOP: a VM paused, a process frozen) with requests in flight and slots
 * taken, for longer than two lock periods, then resumed (SIGCONT). Meanwhile another worker takes
 * its jobs, looks up what may have reached HighLevel and posts the rest. The paused one, awake,
 * finds its locks gone (renewal fails, or Redis says so with the next slot or right before a late
 * post) and posts nothing of them: no duplicate, nothing lost.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { countLines, writeDataset } from './accounting.ts';
import { closeScenario, until, useCluster } from './support.ts';

const LOCATIONS = ['pause-1', 'pause-2', 'pause-3'];
const LOCK_MS = 2_000;

describe('chaos: a worker paused past its locks', () => {
  const cluster = useCluster();

  it('SIGSTOP for three lock periods with requests in flight, then SIGCONT: 0 duplicates, nothing lost', async () => {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      // Slow enough answers that the paused worker has requests in flight and slots waiting.
      api: { latency: { minMs: 50, maxMs: 250 } },
      env: { WORKER_CONCURRENCY: '8', WORKER_LOCK_MS: String(LOCK_MS), GHL_RATE_LIMIT_MAX: '20' },
    });
    const data = writeDataset(c.dir, 'paused', 900, LOCATIONS);
    const paused = c.spawnWorker();
    const importer = c.ingest(['import', data.file]);
    // Stopped while it is at work, alone (it holds every location): it has delivered (its log
    // says so, flushed every second) and the import goes on. The other worker starts meanwhile.
    await until(
      () => existsSync(paused.log) && readFileSync(paused.log, 'utf8').split('"msg":"delivered"').length > 40,
      30_000,
      'the worker to pause to be at work',
    );
    paused.child.kill('SIGSTOP');
    c.spawnWorker();
    // The other worker takes the location's jobs again (a lease's end, then BullMQ's stalled check).
    await new Promise((resolve) => setTimeout(resolve, 3 * LOCK_MS + 500));
    paused.child.kill('SIGCONT');
    expect(await importer.exited).toBe(2);
    await c.settled(LOCATIONS, 60_000);
    const rejected = countLines(`${data.file}.rejects.ndjson`);
    // The pause did cost the paused worker its jobs (so the race was run), and none was posted twice.
    const abandoned = c.workerLogs('job abandoned').length;
    const refused = c.workerLogs('job lock lost').length;
    const a = await closeScenario(c, [data], rejected, {
      scenario: 'a worker SIGSTOPped past its locks',
      started,
      note: `${abandoned} jobs abandoned when their lock renewal failed, ${refused} refused a slot or a post for a lost lock`,
    });
    expect(abandoned + refused).toBeGreaterThan(0);
    expect(a.duplicates).toBe(0);
    expect(a.deadLettered).toBe(0);
  }, 90_000);
});
