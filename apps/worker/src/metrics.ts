/**
 * Prometheus metrics of a worker process (prom-client). Every name of ours starts with
 * `ghl_ingest_`, the application's namespace (README, Metric names).
 *
 * - Node's default metrics under their standard names (`process_cpu_seconds_total`, ...), so
 *   stock Node.js dashboards match; `ghl_ingest_build_info` (version, revision, Node version).
 * - This process's delivery counters and the post latency histogram, without a location label:
 *   with thousands of locations a label per location is thousands of series per metric. Per
 *   location detail is `ingest status`.
 * - Gauges of the whole system (jobs, locations, budget use, dead letters, imports, the oldest
 *   waiting message), reported by one worker at a time: system-gauges.ts.
 * - Counters with a closed set of label values start at 0 for each value, so that `increase()`
 *   sees the first event (Prometheus cannot tell how a series that appears at 1 got there).
 */
import { buildInfo, FAILURE_CLASSES, type TokenAnswer } from '@ghl-ingest/queue';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryEvent, DeliveryOutcome } from './deliver.ts';
import type { RequestKind } from './prepare.ts';
import type { NotifyResult } from './notify-sender.ts';
import type { LookupResult } from './reconcile.ts';
import { SystemGauges, type SharedSources } from './system-gauges.ts';

/** Every delivery outcome (checked by the compiler), each counted from 0. */
const OUTCOMES = Object.keys({
  delivered: 0,
  skipped: 0,
  retrying: 0,
  'dead-lettered': 0,
  'rate-limited': 0,
  paused: 0,
  waiting: 0,
  'api-down': 0,
} satisfies Record<DeliveryOutcome, 0>) as DeliveryOutcome[];
/** Why an OAuth refresh brought no token (client.ts `TokenAnswer`), each counted from 0. */
const REFRESH_FAILURES = Object.keys({ revoked: 0, 'app-refused': 0, refused: 0, unavailable: 0 } satisfies Record<
  Exclude<TokenAnswer['kind'], 'granted'>,
  0
>) as Exclude<TokenAnswer['kind'], 'granted'>[];
/** What became of notification events (notify-sender.ts), each counted from 0. */
const NOTIFY_RESULTS = Object.keys({ sent: 0, failed: 0, dropped: 0 } satisfies Record<NotifyResult, 0>) as NotifyResult[];

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
  readonly #refreshes: Counter;
  readonly #refreshFailures: Counter<'reason'>;
  readonly #notifications: Counter<'result'>;
  readonly #system: SystemGauges;

  constructor(shared: SharedSources) {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    new Gauge({
      name: 'ghl_ingest_build_info',
      help: 'Always 1: the version of this worker, its git revision ("unknown" outside a git checkout) and the Node version it runs on.',
      labelNames: ['version', 'revision', 'node_version'],
      registers,
    }).set({ ...buildInfo(new URL('../package.json', import.meta.url)) }, 1);
    this.#deliveries = new Counter({
      name: 'ghl_ingest_deliveries_total',
      help: 'Delivery outcomes (delivered, skipped, retrying, dead-lettered, rate-limited, paused, waiting, api-down).',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of OUTCOMES) this.#deliveries.inc({ outcome }, 0);
    this.#statuses = new Counter({
      name: 'ghl_ingest_http_responses_total',
      help: 'Answers from HighLevel by HTTP status (or network error).',
      labelNames: ['status'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'ghl_ingest_post_duration_seconds',
      help: 'Latency of POST /conversations/messages/inbound.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#rateLimited = new Counter({ name: 'ghl_ingest_rate_limited_total', help: '429 answers from HighLevel.', registers });
    this.#lookups = new Counter({
      name: 'ghl_ingest_reconcile_lookups_total',
      help: 'Lookups at HighLevel before posting again after an unknown outcome, by result (found: not posted again; absent; undecided: posted as without one) and why undecided.',
      labelNames: ['result', 'reason'],
      registers,
    });
    this.#requests = new Counter({
      name: 'ghl_ingest_requests_total',
      help: 'Requests sent to HighLevel (kind): posts, lookups before posting again, contact upserts, conversation searches and creates, uploads.',
      labelNames: ['kind'],
      registers,
    });
    const sent = this.#sent;
    new Gauge({
      name: 'ghl_ingest_lookup_requests_ratio',
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
      name: 'ghl_ingest_contacts_total',
      help: 'Contacts named by phone or email that HighLevel found (result=found) or created (result=created).',
      labelNames: ['result'],
      registers,
    });
    this.#uploadBytes = new Counter({ name: 'ghl_ingest_upload_bytes_total', help: 'Bytes of attachment files uploaded to HighLevel.', registers });
    this.#deadLetters = new Counter({
      name: 'ghl_ingest_dead_letters_total',
      help: 'Messages dead-lettered, by failure class.',
      labelNames: ['class'],
      registers,
    });
    for (const c of FAILURE_CLASSES) this.#deadLetters.inc({ class: c }, 0);
    this.#refreshes = new Counter({
      name: 'ghl_ingest_oauth_refreshes_total',
      help: 'OAuth refresh requests this process sent HighLevel (a refresh token spent, or an agency asked for a location token), whatever the answer.',
      registers,
    });
    this.#refreshFailures = new Counter({
      name: 'ghl_ingest_oauth_refresh_failures_total',
      help: 'OAuth refresh requests that brought no token, by reason: revoked (re-authorise), app-refused (GHL_CLIENT_ID / GHL_CLIENT_SECRET), refused, unavailable (retried later).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of REFRESH_FAILURES) this.#refreshFailures.inc({ reason }, 0);
    this.#notifications = new Counter({
      name: 'ghl_ingest_notifications_total',
      help: 'Notification events (NOTIFY_WEBHOOK_URL) by result: sent (the webhook answered 2xx), failed (in a POST to be retried), dropped (refused for good, too old, or the outbox full).',
      labelNames: ['result'],
      registers,
    });
    for (const result of NOTIFY_RESULTS) this.#notifications.inc({ result }, 0);
    this.#system = new SystemGauges(this.registry, shared);
  }

  /** Gives up the reporter role (system-gauges.ts), so another worker takes it at its next renewal. */
  close(): Promise<void> {
    return this.#system.close();
  }

  record(event: DeliveryEvent): void {
    this.#deliveries.inc({ outcome: event.outcome });
    if (event.status !== undefined) this.#statuses.inc({ status: String(event.status) });
    if (event.latencyMs !== undefined) this.#latency.observe(event.latencyMs / 1000);
    if (event.outcome === 'rate-limited') this.#rateLimited.inc();
    if (event.outcome === 'dead-lettered') this.#deadLetters.inc({ class: event.failureClass ?? 'unknown' });
  }

  /** A contact resolved by an upsert (prepare.ts). */
  contact(created: boolean): void {
    this.#contacts.inc({ result: created ? 'created' : 'found' });
  }

  uploaded(bytes: number): void {
    this.#uploadBytes.inc(bytes);
  }

  /** A request sent to HighLevel. */
  requested(kind: RequestKind): void {
    this.#sent[kind] += 1;
    this.#requests.inc({ kind });
  }

  /** A lookup's result (reconcile.ts). */
  lookedUp(result: LookupResult): void {
    this.#lookups.inc({ result: result.kind, reason: result.kind === 'undecided' ? result.reason : '' });
  }

  /** Notification events sent, failed or dropped (notify.ts). */
  notified(result: NotifyResult, events: number): void {
    this.#notifications.inc({ result }, events);
  }

  /** An OAuth refresh request's answer (OAuthTokens `onRefresh`). */
  refreshed(answer: TokenAnswer['kind']): void {
    this.#refreshes.inc();
    if (answer !== 'granted') this.#refreshFailures.inc({ reason: answer });
  }
}
