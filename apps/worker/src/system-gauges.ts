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

    for (const g of GAUGES) {
      new Gauge({
        name: g.name,
        help: g.help,
        labelNames: g.labels ?? [],
        registers,
        async collect() {
          this.reset();
          for (const [labels, value] of g.values(await read())) this.set(labels, value);
        },
      });
    }
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

type Labels = Record<string, string>;

/** A shared gauge: its values from a reading (undefined on a worker that is not the reporter). */
interface SharedGauge {
  name: string;
  help: string;
  labels?: string[];
  values: (r: SharedReading | undefined) => Iterable<readonly [Labels, number]>;
}

const NONE: Labels = {};

const GAUGES: readonly SharedGauge[] = [
  {
    name: 'ghl_ingest_metrics_reporter',
    help: '1 on the one worker that reports the shared gauges (jobs, locations, budget, dead letters, imports), 0 on the others.',
    values: (r) => [[NONE, r === undefined ? 0 : 1]],
  },
  {
    name: 'ghl_ingest_queue_jobs',
    help: 'Jobs of every location by state (wait, active, delayed: retries); failed ones are dead letters (ghl_ingest_dead_letter_messages). Reported by one worker.',
    labels: ['state'],
    values: (r) => {
      if (r === undefined) return [];
      const sum = (f: (s: LocationSnapshot) => number) => r.snapshots.reduce((a, s) => a + f(s), 0);
      return [
        [{ state: 'wait' }, sum((s) => s.waiting)],
        [{ state: 'active' }, sum((s) => s.active)],
        [{ state: 'delayed' }, sum((s) => s.delayed)],
      ];
    },
  },
  {
    name: 'ghl_ingest_locations',
    help: 'Locations by state: known (ever had a message), with_work, paused (credentials), parked (daily budget), at_burst_limit. Reported by one worker.',
    labels: ['state'],
    values: (r) => {
      if (r === undefined) return [];
      const count = (f: (s: LocationSnapshot) => boolean) => r.snapshots.filter(f).length;
      return [
        [{ state: 'known' }, r.known],
        [{ state: 'with_work' }, count(hasWork)],
        [{ state: 'paused' }, count((s) => s.hold?.state === 'paused')],
        [{ state: 'parked' }, count((s) => s.hold?.state === 'parked')],
        [{ state: 'at_burst_limit' }, count((s) => s.sentInWindow >= s.budget.max)],
      ];
    },
  },
  {
    name: 'ghl_ingest_budget_used_ratio',
    help: 'Share of the burst budget (requests per window) in use now, over the locations with work (0 to 1). Reported by one worker.',
    values: (r) => {
      const busy = r?.snapshots.filter(hasWork) ?? [];
      const budget = busy.reduce((a, s) => a + s.budget.max, 0);
      return [[NONE, budget === 0 ? 0 : Math.min(1, busy.reduce((a, s) => a + s.sentInWindow, 0) / budget)]];
    },
  },
  {
    name: 'ghl_ingest_dead_letter_messages',
    help: 'Messages now in the dead-letter queue (for ingest dlq). Reported by one worker.',
    values: (r) => (r === undefined ? [] : [[NONE, r.deadLetters]]),
  },
  {
    name: 'ghl_ingest_location_held_seconds',
    help: 'How long each held location has been paused (credentials) or parked (daily budget); only held locations appear. Reported by one worker.',
    labels: ['location', 'state'],
    values: (r) =>
      (r?.snapshots ?? []).flatMap((s) =>
        s.hold === undefined ? [] : [[{ location: s.locationId, state: s.hold.state }, (Date.now() - s.hold.since) / 1000] as const],
      ),
  },
  {
    name: 'ghl_ingest_oldest_waiting_age_seconds',
    help: 'How long the message next in line has waited, the longest over the locations not held (paused or parked), by source (live: intake and library; backfill: imports); 0 when none waits. Reported by one worker.',
    labels: ['source'],
    values: (r) =>
      r === undefined
        ? []
        : SOURCES.map((source) => {
            const since = r.waitingSince[source];
            return [{ source }, since === undefined ? 0 : Math.max(0, (Date.now() - since) / 1000)] as const;
          }),
  },
  {
    name: 'ghl_ingest_import_messages',
    help: 'Messages of each import not yet finished, by outcome so far (accepted, delivered, dead, rejected). Reported by one worker.',
    labels: ['import', 'outcome'],
    values: (r) =>
      // Finished imports leave the metric.
      (r?.imports ?? [])
        .filter((i) => i.state !== 'done' || i.pending > 0)
        .flatMap((i) =>
          (
            [
              ['accepted', i.accepted],
              ['delivered', i.delivered],
              ['dead', i.dead],
              ['rejected', i.rejected],
            ] as const
          ).map(([outcome, n]) => [{ import: i.importId, outcome }, n] as const),
        ),
  },
];

/** A location with messages waiting, in flight or due for a retry. */
function hasWork(s: LocationSnapshot): boolean {
  return s.waiting + s.active + s.delayed > 0;
}
