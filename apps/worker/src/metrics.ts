/**
 * Prometheus metrics of a worker process (prom-client).
 *
 * - Node's default metrics under their standard names (`process_cpu_seconds_total`, ...), so
 *   stock Node.js dashboards match.
 * - This process's delivery counters and the request latency histogram, without a location label:
 *   with thousands of locations a label per location is thousands of series per metric. Per
 *   location detail is `ingest status`.
 * - Gauges of the whole system (jobs by state, locations by state, budget use, dead letters,
 *   imports) are reported by one worker at a time, the reporter, so that summing over workers
 *   does not double count: a Redis key with a TTL names it, and another worker takes over when
 *   it stops renewing. The reporter reads the locations at work (ready, leased, paused or parked:
 *   not every location ever known) in pipelined batches, at most once per SHARED_READ_MS whatever
 *   the scrape rate.
 */
import type { RequestKind } from './prepare.ts';
import { randomUUID } from 'node:crypto';
import { keysFor, readImports, type LocationReader, type LocationSnapshot } from '@ghl-ingest/queue';
import type { LookupResult } from './reconcile.ts';
import type { RedisClient } from '@ghl-ingest/queue';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryEvent } from './deliver.ts';

/** How long a reporter keeps the role without renewing it; it renews every third of that. */
const REPORTER_TTL_MS = 30_000;
/** The shared gauges are read from Redis at most this often. */
const SHARED_READ_MS = 10_000;

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
}

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #deliveries: Counter<'outcome'>;
  readonly #statuses: Counter<'status'>;
  readonly #latency: Histogram;
  readonly #rateLimited: Counter;
  readonly #lookups: Counter;
  readonly #requests: Counter<'kind'>;
  readonly #sent: Record<RequestKind, number> = { post: 0, lookup: 0, upsert: 0, conversation: 0, upload: 0 };
  readonly #contacts: Counter<'result'>;
  readonly #uploadBytes: Counter;
  readonly #deadLetters: Counter<'class'>;
  readonly #reporter: { redis: RedisClient; key: string; id: string; timer: NodeJS.Timeout };

  constructor(shared: SharedSources) {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.#deliveries = new Counter({
      name: 'ghl_deliveries_total',
      help: 'Delivery outcomes (delivered, skipped, retrying, dead-lettered, rate-limited, paused, waiting, api-down).',
      labelNames: ['outcome'],
      registers,
    });
    this.#statuses = new Counter({
      name: 'ghl_http_responses_total',
      help: 'Answers from HighLevel by HTTP status (or network error).',
      labelNames: ['status'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'ghl_request_duration_seconds',
      help: 'Latency of POST /conversations/messages/inbound.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#rateLimited = new Counter({ name: 'ghl_rate_limited_total', help: '429 answers from HighLevel.', registers });
    this.#lookups = new Counter({
      name: 'ghl_reconcile_lookups_total',
      help: 'Lookups at HighLevel before posting again after an unknown outcome, by result (found: not posted again; absent; undecided: posted as without one) and why undecided.',
      labelNames: ['result', 'reason'],
      registers,
    });
    this.#requests = new Counter({
      name: 'ghl_requests_total',
      help: 'Requests sent to HighLevel (kind): posts, lookups before posting again, contact upserts, conversation searches and creates, uploads.',
      labelNames: ['kind'],
      registers,
    });
    const sent = this.#sent;
    new Gauge({
      name: 'ghl_lookup_requests_ratio',
      help: "The lookups' reads as a share of this process's requests to HighLevel since it started.",
      registers,
      collect() {
        this.set(
          sent.lookup /
            Math.max(
              1,
              Object.values(sent).reduce((a, b) => a + b, 0),
            ),
        );
      },
    });
    this.#contacts = new Counter({
      name: 'ghl_contacts_total',
      help: 'Contacts named by phone or email that HighLevel found (result=found) or created (result=created).',
      labelNames: ['result'],
      registers,
    });
    this.#uploadBytes = new Counter({ name: 'ghl_upload_bytes_total', help: 'Bytes of attachment files uploaded to HighLevel.', registers });
    this.#deadLetters = new Counter({ name: 'ghl_dead_letters_total', help: 'Messages dead-lettered, by failure class.', labelNames: ['class'], registers });
    const key = keysFor(shared.prefix).metricsReporter;
    const id = randomUUID();
    const renew = () => void this.#report().catch(() => undefined);
    this.#reporter = { redis: shared.redis, key, id, timer: setInterval(renew, REPORTER_TTL_MS / 3).unref() };
    renew();
    this.#registerShared(shared);
  }

  /** Stops renewing the reporter role and gives it up, so another worker takes it at its next renewal. */
  async close(): Promise<void> {
    const { redis, key, id, timer } = this.#reporter;
    clearInterval(timer);
    if ((await redis.get(key).catch(() => null)) === id) await redis.del(key).catch(() => undefined);
  }

  record(event: DeliveryEvent): void {
    this.#deliveries.inc({ outcome: event.outcome });
    if (event.status !== undefined) this.#statuses.inc({ status: String(event.status) });
    if (event.latencyMs !== undefined) this.#latency.observe(event.latencyMs / 1000);
    if (event.outcome === 'rate-limited') this.#rateLimited.inc();
    if (event.outcome === 'dead-lettered') this.#deadLetters.inc({ class: event.failureClass ?? 'unknown' });
  }

  /** A request sent to HighLevel. */
  /** A contact resolved by an upsert (prepare.ts). */
  contact(created: boolean): void {
    this.#contacts.inc({ result: created ? 'created' : 'found' });
  }

  uploaded(bytes: number): void {
    this.#uploadBytes.inc(bytes);
  }

  requested(kind: RequestKind): void {
    this.#sent[kind] += 1;
    this.#requests.inc({ kind });
  }

  /** A lookup's result (reconcile.ts). */
  lookedUp(result: LookupResult): void {
    this.#lookups.inc({ result: result.kind, reason: result.kind === 'undecided' ? result.reason : '' });
  }

  #registerShared({ state, redis, prefix, deadLetterCount }: SharedSources): void {
    const registers = [this.registry];
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
          last = { at: Date.now(), known, snapshots, deadLetters, imports };
        }
        return last;
      })().finally(() => setTimeout(() => (reading = undefined), 0).unref());
      return reading;
    };

    new Gauge({
      name: 'ghl_metrics_reporter',
      help: '1 on the one worker that reports the shared gauges (jobs, locations, budget, dead letters, imports), 0 on the others.',
      registers,
      async collect() {
        this.set((await read()) === undefined ? 0 : 1);
      },
    });
    new Gauge({
      name: 'ghl_queue_jobs',
      help: 'Jobs of every location by state (wait, active, delayed: retries); failed ones are dead letters (ghl_dead_letter_messages). Reported by one worker.',
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
      name: 'ghl_locations',
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
      name: 'ghl_budget_used_ratio',
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
      name: 'ghl_dead_letter_messages',
      help: 'Messages now in the dead-letter queue (for ingest dlq). Reported by one worker.',
      registers,
      async collect() {
        this.reset();
        const r = await read();
        if (r !== undefined) this.set(r.deadLetters);
      },
    });
    new Gauge({
      name: 'ghl_location_held_seconds',
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
      name: 'ghl_import_messages',
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
