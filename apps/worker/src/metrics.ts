/**
 * Prometheus metrics of a worker process (prom-client), fed by delivery events. Queue depths are
 * read from Redis when scraped, for the locations this process serves.
 */
import { readImports, type LocationState } from '@ghl-ingest/queue';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryEvent } from './deliver.ts';

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #deliveries: Counter<'outcome' | 'location'>;
  readonly #statuses: Counter<'status'>;
  readonly #latency: Histogram<'location'>;
  readonly #rateLimited: Counter<'location'>;
  readonly #deadLetters: Counter<'class' | 'location'>;
  readonly #skips: Counter<'location'>;
  readonly #parked: Counter<'location'>;

  /** `served`: the locations this process served lately, whose depths and holds it reports. */
  constructor(served: () => string[], state: LocationState, redis: Redis, prefix: string) {
    collectDefaultMetrics({ register: this.registry, prefix: 'ghl_worker_' });
    const registers = [this.registry];
    // Both per-location gauges read one snapshot per scrape (prom-client collects them one by one).
    let snapshot: { at: number; value: ReturnType<LocationState['snapshot']> } | undefined;
    const snapshots = () => {
      if (snapshot === undefined || Date.now() - snapshot.at > 1_000) snapshot = { at: Date.now(), value: state.snapshot(served()) };
      return snapshot.value;
    };
    this.#deliveries = new Counter({ name: 'ghl_deliveries_total', help: 'Delivery outcomes by location (delivered, skipped, retrying, dead-lettered, rate-limited, paused, waiting, api-down).', labelNames: ['outcome', 'location'], registers });
    this.#statuses = new Counter({ name: 'ghl_http_responses_total', help: 'Answers from HighLevel by HTTP status (or network error).', labelNames: ['status'], registers });
    this.#latency = new Histogram({ name: 'ghl_request_duration_seconds', help: 'Latency of POST /conversations/messages/inbound.', labelNames: ['location'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers });
    this.#rateLimited = new Counter({ name: 'ghl_rate_limited_total', help: '429 answers from HighLevel by location.', labelNames: ['location'], registers });
    this.#deadLetters = new Counter({ name: 'ghl_dead_letters_total', help: 'Messages dead-lettered by failure class and location.', labelNames: ['class', 'location'], registers });
    this.#skips = new Counter({ name: 'ghl_ledger_skips_total', help: 'Messages completed without posting because the delivery ledger knew them.', labelNames: ['location'], registers });
    this.#parked = new Counter({ name: 'ghl_location_waits_total', help: 'Times a location had to wait for its budget (burst window or daily cap).', labelNames: ['location'], registers });
    new Gauge({
      name: 'ghl_queue_depth',
      help: 'Jobs of each location served by this process, by state.',
      labelNames: ['location', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const s of await snapshots()) {
          for (const [name, n] of [['wait', s.waiting], ['active', s.active], ['delayed', s.delayed], ['failed', s.failed]] as const) {
            this.set({ location: s.locationId, state: name }, n);
          }
        }
      },
    });
    new Gauge({
      name: 'ghl_location_held_seconds',
      help: 'How long each location served here has been paused (credentials) or parked (daily budget), 0 if neither.',
      labelNames: ['location', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const s of await snapshots()) {
          if (s.hold !== undefined) this.set({ location: s.locationId, state: s.hold.state }, (Date.now() - s.hold.since) / 1000);
        }
      },
    });
    new Gauge({
      name: 'ghl_import_messages',
      help: 'Messages of each import not yet finished, by outcome so far (accepted, delivered, dead, rejected).',
      labelNames: ['import', 'outcome'],
      registers,
      async collect() {
        this.reset();
        for (const i of await readImports(redis, prefix)) {
          if (i.state === 'done' && i.pending === 0) continue; // finished imports leave the metric
          for (const [outcome, n] of [['accepted', i.accepted], ['delivered', i.delivered], ['dead', i.dead], ['rejected', i.rejected]] as const) {
            this.set({ import: i.importId, outcome }, n);
          }
        }
      },
    });
  }

  record(event: DeliveryEvent): void {
    const location = event.locationId;
    this.#deliveries.inc({ outcome: event.outcome, location });
    if (event.status !== undefined) this.#statuses.inc({ status: String(event.status) });
    if (event.latencyMs !== undefined) this.#latency.observe({ location }, event.latencyMs / 1000);
    if (event.outcome === 'rate-limited') this.#rateLimited.inc({ location });
    if (event.outcome === 'skipped') this.#skips.inc({ location });
    if (event.outcome === 'waiting') this.#parked.inc({ location });
    if (event.outcome === 'dead-lettered') this.#deadLetters.inc({ class: event.failureClass ?? 'unknown', location });
  }
}
