/**
 * The gauges of the whole system (jobs, locations, budget use, dead letters, imports, the oldest
 * waiting message), reported by one worker at a time, the reporter, so that summing over workers
 * does not double count: a Redis key with a TTL names it, and another worker takes over when it
 * stops renewing. The reporter reads the locations at work (ready, leased, paused or parked: not
 * every location ever known) in pipelined batches, at most once per SHARED_READ_MS whatever the
 * scrape rate; for the oldest waiting message, only those of them with messages waiting and not
 * held, a few reads each (queues.ts `nextWaitingSince`), never a queue's length.
 */
import { randomUUID } from 'node:crypto';
import { keysFor, nextWaitingSince, readImports, type LocationReader, type LocationSnapshot, type RedisClient, type WaitingSource } from '@ghl-ingest/queue';
import { Gauge, type Registry } from 'prom-client';

/** How long a reporter keeps the role without renewing it; it renews every third of that. */
const REPORTER_TTL_MS = 30_000;
/** The shared gauges are read from Redis at most this often. */
const SHARED_READ_MS = 10_000;
const SOURCES: readonly WaitingSource[] = ['live', 'backfill'];

export interface SharedSources {
  /** The locations at work and their snapshots (a worker's WorkerLocations, or a LocationReader). */
  state: Pick<LocationReader, 'knownCount' | 'active' | 'snapshot'>;
  redis: RedisClient;
  prefix: string;
  /** Messages now in the dead-letter queue. */
  deadLetterCount: () => Promise<number>;
}

interface SharedReading {
  at: number;
  known: number;
  snapshots: LocationSnapshot[];
  deadLetters: number;
  imports: Awaited<ReturnType<typeof readImports>>;
  /** When the message next in line was enqueued (epoch ms), the earliest over the locations not held. */
  waitingSince: Partial<Record<WaitingSource, number>>;
}

/** Registers the system gauges on a worker's registry, and holds (or waits for) the reporter role. */
export class SystemGauges {
  readonly #reporter: { redis: RedisClient; key: string; id: string; timer: NodeJS.Timeout };

  constructor(registry: Registry, shared: SharedSources) {
    const key = keysFor(shared.prefix).metricsReporter;
    const id = randomUUID();
    const renew = () => void this.#report().catch(() => undefined);
    this.#reporter = { redis: shared.redis, key, id, timer: setInterval(renew, REPORTER_TTL_MS / 3).unref() };
    renew();
    this.#register(registry, shared);
  }

  /** Stops renewing the reporter role and gives it up, so another worker takes it at its next renewal. */
  async close(): Promise<void> {
    const { redis, key, id, timer } = this.#reporter;
    clearInterval(timer);
    if ((await redis.get(key).catch(() => null)) === id) await redis.del(key).catch(() => undefined);
  }

  #register(registry: Registry, { state, redis, prefix, deadLetterCount }: SharedSources): void {
    const registers = [registry];
    let reading: Promise<SharedReading | undefined> | undefined;
    let last: SharedReading | undefined;
    // One reading per scrape for every shared gauge (prom-client collects them one by one).
    const read = (): Promise<SharedReading | undefined> => {
      reading ??= (async () => {
        if (!(await this.#report())) return undefined;
        if (last === undefined || Date.now() - last.at >= SHARED_READ_MS) {
          const [known, snapshots, deadLetters, imports] = await Promise.all([
            state.knownCount(),
            state.active().then((ids) => state.snapshot(ids)),
            deadLetterCount(),
            readImports(redis, prefix),
          ]);
          // Held locations wait on purpose (a person, or the daily reset): not a line falling behind.
          const lines = snapshots.filter((s) => s.waiting > 0 && s.hold === undefined).map((s) => s.locationId);
          const waitingSince = await nextWaitingSince(redis, prefix, lines);
          last = { at: Date.now(), known, snapshots, deadLetters, imports, waitingSince };
        }
        return last;
      })().finally(() => setTimeout(() => (reading = undefined), 0).unref());
      return reading;
    };

    new Gauge({
      name: 'ghl_ingest_metrics_reporter',
      help: '1 on the one worker that reports the shared gauges (jobs, locations, budget, dead letters, imports), 0 on the others.',
      registers,
      async collect() {
        this.set((await read()) === undefined ? 0 : 1);
      },
    });
    new Gauge({
      name: 'ghl_ingest_queue_jobs',
      help: 'Jobs of every location by state (wait, active, delayed: retries); failed ones are dead letters (ghl_ingest_dead_letter_messages). Reported by one worker.',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        const r = await read();
        if (r === undefined) return;
        const totals = { wait: 0, active: 0, delayed: 0 };
        for (const l of r.snapshots) {
          totals.wait += l.waiting;
          totals.active += l.active;
          totals.delayed += l.delayed;
        }
        for (const [state, n] of Object.entries(totals)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'ghl_ingest_locations',
      help: 'Locations by state: known (ever had a message), with_work, paused (credentials), parked (daily budget), at_burst_limit. Reported by one worker.',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        const r = await read();
        if (r === undefined) return;
        const count = (f: (s: LocationSnapshot) => boolean) => r.snapshots.filter(f).length;
        this.set({ state: 'known' }, r.known);
        this.set({ state: 'with_work' }, count(hasWork));
        this.set(
          { state: 'paused' },
          count((s) => s.hold?.state === 'paused'),
        );
        this.set(
          { state: 'parked' },
          count((s) => s.hold?.state === 'parked'),
        );
        this.set(
          { state: 'at_burst_limit' },
          count((s) => s.sentInWindow >= s.budget.max),
        );
      },
    });
    new Gauge({
      name: 'ghl_ingest_budget_used_ratio',
      help: 'Share of the burst budget (requests per window) in use now, over the locations with work (0 to 1). Reported by one worker.',
      registers,
      async collect() {
        const r = await read();
        const busy = r?.snapshots.filter(hasWork) ?? [];
        const budget = busy.reduce((a, s) => a + s.budget.max, 0);
        this.set(budget === 0 ? 0 : Math.min(1, busy.reduce((a, s) => a + s.sentInWindow, 0) / budget));
      },
    });
    new Gauge({
      name: 'ghl_ingest_dead_letter_messages',
      help: 'Messages now in the dead-letter queue (for ingest dlq). Reported by one worker.',
      registers,
      async collect() {
        this.reset();
        const r = await read();
        if (r !== undefined) this.set(r.deadLetters);
      },
    });
    new Gauge({
      name: 'ghl_ingest_location_held_seconds',
      help: 'How long each held location has been paused (credentials) or parked (daily budget); only held locations appear. Reported by one worker.',
      labelNames: ['location', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const s of (await read())?.snapshots ?? []) {
          if (s.hold !== undefined) this.set({ location: s.locationId, state: s.hold.state }, (Date.now() - s.hold.since) / 1000);
        }
      },
    });
    new Gauge({
      name: 'ghl_ingest_oldest_waiting_age_seconds',
      help: 'How long the message next in line has waited, the longest over the locations not held (paused or parked), by source (live: intake and library; backfill: imports); 0 when none waits. Reported by one worker.',
      labelNames: ['source'],
      registers,
      async collect() {
        this.reset();
        const r = await read();
        if (r === undefined) return;
        for (const source of SOURCES) {
          const since = r.waitingSince[source];
          this.set({ source }, since === undefined ? 0 : Math.max(0, (Date.now() - since) / 1000));
        }
      },
    });
    new Gauge({
      name: 'ghl_ingest_import_messages',
      help: 'Messages of each import not yet finished, by outcome so far (accepted, delivered, dead, rejected). Reported by one worker.',
      labelNames: ['import', 'outcome'],
      registers,
      async collect() {
        this.reset();
        for (const i of (await read())?.imports ?? []) {
          if (i.state === 'done' && i.pending === 0) continue; // finished imports leave the metric
          for (const [outcome, n] of [
            ['accepted', i.accepted],
            ['delivered', i.delivered],
            ['dead', i.dead],
            ['rejected', i.rejected],
          ] as const) {
            this.set({ import: i.importId, outcome }, n);
          }
        }
      },
    });
  }

  /** Whether this worker reports the shared gauges: it holds the reporter key (taking it if free), renewed on each scrape. */
  async #report(): Promise<boolean> {
    const { redis, key, id } = this.#reporter;
    const previous = await redis.set(key, id, 'PX', REPORTER_TTL_MS, 'NX', 'GET');
    if (previous === null) return true;
    if (previous !== id) return false;
    await redis.pexpire(key, REPORTER_TTL_MS);
    return true;
  }
}

/** A location with messages waiting, in flight or due for a retry. */
function hasWork(s: LocationSnapshot): boolean {
  return s.waiting + s.active + s.delayed > 0;
}
