/**
 * A marketplace app under chaos: 4 workers, 20 locations with OAuth tokens seeded by `ingest auth
 * import`, access tokens living 3 s at a stand-in that rotates refresh tokens on every refresh
 * (so every location refreshes every couple of seconds, by whichever worker needs it first),
 * workers SIGKILLed at random moments (in the middle of refreshes among them), Redis restarted, and
 * one location's authorisation revoked at HighLevel.
 *
 * What must hold: no refresh token is spent twice, except where a refresh's answer never reached
 * its (killed) worker: HighLevel rotated the pair and the new one died with the process, the one
 * loss no client can recover from (README: Running as a marketplace app); only the revoked
 * location (and any such) pauses, with its reason, its messages kept; nothing is lost or
 * dead-lettered; no token of any kind in Redis, the logs, the dead letters or /metrics.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { countLines, writeDataset } from './accounting.ts';
import { importToEnd } from './clients.ts';
import { closeScenario, until, useCluster } from './support.ts';

const LOCATIONS = Array.from({ length: 20 }, (_, i) => `mkt-${String(i).padStart(2, '0')}`);

describe('chaos: a marketplace app (OAuth)', () => {
  const cluster = useCluster();

  it('access tokens living 3 s, workers SIGKILLed, Redis restarted, one authorisation revoked: one refresh per refresh token, only the revoked location paused, nothing lost, no token anywhere', async () => {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      oauth: { accessTtlMs: 3_000 },
      appendfsync: 'always',
      api: { limits: { max: 20, windowMs: 1000 }, latency: { minMs: 2, maxMs: 10 } },
      env: { GHL_RATE_LIMIT_MAX: '20', GHL_RATE_LIMIT_WINDOW_MS: '1000', WORKER_CONCURRENCY: '8' },
    });
    await c.authorise();
    const data = writeDataset(c.dir, 'oauth', 8_000, LOCATIONS);
    for (let i = 0; i < 4; i += 1) c.spawnWorker();
    const importer = c.ingest(['import', data.file]);
    const [revoked] = LOCATIONS as [string];
    const total = data.valid.size;
    let kills = 0;
    // Kills at random points, a revoke and a Redis restart in between.
    const events: { at: number; act: () => Promise<void> }[] = [
      ...[0.12, 0.3, 0.5, 0.7, 0.85].map((f) => ({
        at: f,
        act: async () => {
          await c.replaceRandomWorker();
          kills += 1;
        },
      })),
      { at: 0.2, act: () => c.api.revoke({ kind: 'location', id: revoked }) },
      {
        at: 0.6,
        act: async () => {
          await c.redis.kill();
          await c.redis.restart();
        },
      },
    ].sort((a, b) => a.at - b.at);
    for (const event of events) {
      const target = Math.round(total * (event.at + Math.random() * 0.05));
      await until(async () => (await c.api.stats()).accepted >= target, 90_000, `${target} deliveries`);
      await event.act();
    }
    await importToEnd(c, importer, data.file);
    const others = LOCATIONS.filter((l) => l !== revoked);
    await until(() => c.queue(revoked).isPaused(), 30_000, `${revoked} to pause`);

    const oauth = async () => (await c.api.stats()).oauth;
    // A worker SIGKILLed inside a refresh's round trip, after HighLevel rotated the pair, loses that
    // location's authorisation: the next process presents the spent token (counted as reuse at the
    // stand-in) and the location pauses. Every other location must finish.
    const lostInRefresh = async () => (await oauth()).reusedBy.filter((w) => w.startsWith('location:')).map((w) => w.slice('location:'.length));
    try {
      await until(
        async () => {
          const lost = await lostInRefresh();
          const pending = await Promise.all(others.filter((l) => !lost.includes(l)).map((l) => c.pending(l)));
          return pending.every((n) => n === 0);
        },
        120_000,
        'every location but the revoked one (and any that lost its authorisation in a killed refresh) settled',
      );
    } catch (error) {
      // What the unsettled locations' records and the workers said, for the report.
      const lost = await lostInRefresh();
      const stuck = (await Promise.all(others.filter((l) => !lost.includes(l)).map(async (l) => ((await c.pending(l)) > 0 ? l : '')))).filter((l) => l !== '');
      const auth = (await c.ingestToEnd(['auth', 'status', '--json'])).output;
      const lines = c
        .logFiles()
        .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
        .filter((l) => stuck.some((id) => l.includes(`"${id}"`)) && !l.includes('"delivered"'))
        .slice(-40);
      console.log(`stuck ${stuck.join(', ')}\n${auth}\n${lines.join('\n')}`);
      throw error;
    }
    const lostWithAnswer = await lostInRefresh();
    const status = JSON.parse((await c.ingestToEnd(['status', '--json'])).output) as { locations: { locationId: string; state: string; reason?: string }[] };
    const paused = status.locations.filter((l) => l.state === 'paused');
    expect(paused.find((l) => l.locationId === revoked)?.reason).toMatch(/invalid_grant.*re-authorise/);
    expect(paused.map((l) => l.locationId).filter((l) => l !== revoked && !lostWithAnswer.includes(l))).toEqual([]);
    const stats = await oauth();
    // Each reuse is such a loss: at most one per kill, and its location says so.
    expect(stats.reuse).toBeLessThanOrEqual(kills);
    for (const id of lostWithAnswer) expect(paused.find((l) => l.locationId === id)?.reason).toMatch(/a process died while refreshing this token/);
    expect(await c.deadLetters()).toEqual([]);
    // A paused location's messages wait in its queue: not delivered, not lost.
    const pausedIds = new Set(paused.map((l) => l.locationId));
    const waiting = [...data.valid.values()].filter((l) => pausedIds.has(l)).length;
    const received = await c.api.messages();
    const deliveredTo = (l: string) => new Set(received.filter((m) => m.locationId === l).map((m) => m.altId)).size;
    const stillQueued = (await Promise.all([...pausedIds].map((l) => c.pending(l)))).reduce((a, b) => a + b, 0);
    expect(stillQueued).toBe(waiting - [...pausedIds].reduce((a, l) => a + deliveredTo(l), 0));

    const rejected = countLines(`${data.file}.rejects.ndjson`);
    const a = await closeScenario(
      c,
      [data],
      rejected,
      {
        scenario: 'OAuth: tokens living 3 s, kills, Redis restart, a revoke',
        started,
        kills,
        redisRestarts: 1,
        note:
          `${stats.refreshes} refreshes, ${stats.reuse} refresh tokens presented twice (${lostWithAnswer.length} locations lost in a killed refresh), ${stats.answersLost} refresh answers seen lost, ` +
          `${stats.expiredAccess} posts with an expired token (refreshed, not an attempt); paused: ${[...pausedIds].join(', ')}; ${stillQueued} messages kept queued for them`,
      },
      () => false,
      // The paused locations' messages are missing at the stand-in: they wait in their queues (counted above).
      (id) => pausedIds.has(id.slice(0, id.indexOf('/'))),
    );
    expect(a.deadLettered).toBe(0);
  }, 240_000);
});
