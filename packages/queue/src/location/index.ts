/**
 * A location's state, in parts: each module below owns its keys (and the Lua scripts it calls),
 * and three facades give each kind of process what it uses, checked by the compiler rather than
 * at run time:
 *
 * - `ProducerLocations`: producers and the CLI's actions (make due, register, pause, resume);
 * - `LocationReader`: `status`, metrics and tests (snapshot, registry, holds, places);
 * - `WorkerLocations`: the worker (the ready set, the budget and ledger, holds, outcomes, lookups,
 *   the write-back and repair after Redis lost writes).
 *
 * Modules: `ready-set.ts` (the ready set and its wake channel), `holds.ts` (pause, park, resume),
 * `registry.ts` (known and active locations), `outcomes.ts` (dead letters and lookups counted,
 * lookups' budget), `ledger-writeback.ts` (ledger writes kept and written back after a loss),
 * `repair.ts` (the shared structures put back after a loss), `snapshot.ts` (what readers see),
 * `queues.ts` (a location's BullMQ queue and BullMQ's key layout), `import-record.ts` (an
 * import's record), `budget.ts` with `budget-log.ts` (the rate budget, kept in memory by the
 * location's holder), `ledger-gate.ts` (the ledger read before a post and written after).
 */
import type { RedisClient } from '../connection.ts';
import type { LedgerEntry } from '../ledger.ts';
import type { Budget } from '../rate-budget.ts';
import { Budgets, type BudgetSettings } from './budget.ts';
import { LedgerGate, type BeforePost, type JobLock } from './ledger-gate.ts';
import { Holds, type LocationHold } from './holds.ts';
import { LedgerWriteBack, type RestoreReport } from './ledger-writeback.ts';
import { LocationOutcomes, type LookupCount } from './outcomes.ts';
import { LocationQueues } from './queues.ts';
import { ReadySet, type Lease, type TurnEnd } from './ready-set.ts';
import { Registry } from './registry.ts';
import { repairAfterLoss, type RepairReport } from './repair.ts';
import { snapshot, type LocationSnapshot } from './snapshot.ts';

export { holdKeys, parseHold, type HoldKeys, type LocationHold } from './holds.ts';
export { writerKeys, type RestoreReport, type WriterKeys } from './ledger-writeback.ts';
export { lookupsKey, type LookupCount, type Outcomes } from './outcomes.ts';
export {
  bullKeys,
  delayedDueAt,
  locationQueue,
  LocationQueues,
  nextWaitingSince,
  type BullKeyType,
  type LocationQueueOptions,
  type LocationQueuesOptions,
  type QueueCounts,
  type WaitingSource,
} from './queues.ts';
export { readySetKeys, readWake, wakeChannel, type Lease, type MarkMode, type Place, type ReadySetKeys, type TurnEnd, type Wake } from './ready-set.ts';
export { registryKey } from './registry.ts';
export { repairKeys, type RepairKeys, type RepairReport } from './repair.ts';
export type { LocationSnapshot } from './snapshot.ts';
export * from './import-record.ts';
export { Budgets, HeldBudget, processClock, budgetKeys, type BudgetSettings, type BudgetView, type Gate, type RateHeaders, type Take } from './budget.ts';
export type { SavedLog } from './budget-log.ts';
export { ContactDirectory, contactKeys, type ContactKeys } from './contacts.ts';
export { LedgerGate, type BeforePost, type JobLock } from './ledger-gate.ts';

export interface LocationOptions {
  prefix: string;
}

export interface LocationReaderOptions extends LocationOptions {
  /** For `snapshot()`: the budget before learning (settings and overrides). Default: HighLevel's, 100 per 10 s and 200,000 a day. */
  budget?: (locationId: string) => Budget;
  /** GHL_DAILY_RESET as ms after midnight UTC (for `snapshot()`'s day). Default 0. */
  resetOffsetMs?: number;
}

export interface WorkerLocationsOptions extends LocationReaderOptions {
  /** The budget's settings (see budget.ts). */
  limiter: Omit<BudgetSettings, 'resetOffsetMs'>;
  /** How long delivery-ledger entries live. */
  ledgerTtlMs: number;
  /** Queue objects to pause and resume through (a dispatcher's); default: one built for each call. */
  queues?: LocationQueues;
}

/** The parts every facade is made of, wired once. */
interface Parts {
  readySet: ReadySet;
  holds: Holds;
  registry: Registry;
  outcomes: LocationOutcomes;
}

function parts(redis: RedisClient, prefix: string, queues?: LocationQueues): Parts {
  const readySet = new ReadySet(redis, prefix);
  // Without a cache given, pause and resume build a queue object for the call and close it.
  const holds = new Holds(redis, prefix, queues ?? new LocationQueues({ connection: redis, prefix }), readySet);
  return { readySet, holds, registry: new Registry(redis, prefix, readySet, holds), outcomes: new LocationOutcomes(redis, prefix) };
}

/** What producers (and the CLI's `resume`, the marketplace's install events) do to locations. */
export class ProducerLocations {
  readonly #parts: Parts;

  constructor(redis: RedisClient, options: LocationOptions) {
    this.#parts = parts(redis, options.prefix);
  }

  /** Producers added messages for these locations: they become due (live ones go first). */
  markReady(locationIds: Iterable<string>, live: boolean): Promise<number> {
    return this.#parts.readySet.markReady(locationIds, live);
  }

  /** Makes locations known to `status`, `dlq` and metrics. */
  register(locationIds: Iterable<string>): Promise<void> {
    return this.#parts.registry.register(locationIds);
  }

  hold(locationId: string): Promise<LocationHold | undefined> {
    return this.#parts.holds.hold(locationId);
  }

  /** Stops the location in every process until resumed. */
  pause(locationId: string, reason: string): Promise<void> {
    return this.#parts.holds.pause(locationId, reason);
  }

  /** Starts a paused (or parked) location again, due now in every process; returns what held it. */
  resume(locationId: string): Promise<LocationHold | undefined> {
    return this.#parts.holds.resume(locationId);
  }
}

/** What `status`, metrics and tests read of locations. */
export class LocationReader {
  readonly #redis: RedisClient;
  readonly #o: LocationReaderOptions;
  readonly #parts: Parts;

  constructor(redis: RedisClient, options: LocationReaderOptions) {
    this.#redis = redis;
    this.#o = options;
    this.#parts = parts(redis, options.prefix);
  }

  /** What `status` and metrics show, for many locations at once: one pipelined round trip per 500. */
  snapshot(locationIds: readonly string[]): Promise<LocationSnapshot[]> {
    return snapshot({ redis: this.#redis, prefix: this.#o.prefix, ...this.#parts, ...optional(this.#o) }, locationIds);
  }

  /** Every location that ever had a message enqueued, sorted. */
  known(): Promise<string[]> {
    return this.#parts.registry.known();
  }

  /** How many locations ever had a message enqueued. */
  knownCount(): Promise<number> {
    return this.#parts.registry.knownCount();
  }

  /** The locations at work: in the ready set, paused or parked. */
  active(): Promise<string[]> {
    return this.#parts.registry.active();
  }

  hold(locationId: string): Promise<LocationHold | undefined> {
    return this.#parts.holds.hold(locationId);
  }

  /** How long until the location may be taken (ms, 0 if due now), or undefined if it has no work. */
  dueInMs(locationId: string): Promise<number | undefined> {
    return this.#parts.readySet.dueInMs(locationId);
  }

  /** How many locations are due now and not held. */
  dueCount(): Promise<number> {
    return this.#parts.readySet.dueCount();
  }
}

/** What a worker process does to locations: take turns, spend their budget, hold them, and keep the ledger through Redis losing writes. */
export class WorkerLocations {
  readonly #redis: RedisClient;
  readonly #o: WorkerLocationsOptions;
  readonly #parts: Parts;
  readonly #ledger: LedgerWriteBack;
  readonly #gate: LedgerGate;
  /** The locations' budgets, each held in memory by the process that holds the location. */
  readonly budgets: Budgets;

  constructor(redis: RedisClient, options: WorkerLocationsOptions) {
    this.#redis = redis;
    this.#o = options;
    this.#parts = parts(redis, options.prefix, options.queues);
    this.#ledger = new LedgerWriteBack(redis, options.prefix, options.ledgerTtlMs);
    this.#gate = new LedgerGate(redis, options.prefix, options.ledgerTtlMs, this.#ledger);
    this.budgets = new Budgets(redis, options.prefix, { ...options.limiter, resetOffsetMs: options.resetOffsetMs ?? 0 }, () => this.#ledger.runId);
  }

  /** The pub/sub channel on which locations becoming due are announced. */
  get wakeChannel(): string {
    return this.#parts.readySet.wakeChannel;
  }

  // --- the ready set -------------------------------------------------------------------------

  /** Makes locations due (a retry of their own, say); live ones go first. */
  markReady(locationIds: Iterable<string>, live: boolean): Promise<number> {
    return this.#parts.readySet.markReady(locationIds, live);
  }

  /** Takes up to `count` due locations for `leaseMs`; says when the next one is due (ms, or undefined). */
  claim(count: number, leaseMs: number, liveOnly = false): Promise<{ leases: Lease[]; nextDueInMs: number | undefined }> {
    return this.#parts.readySet.claim(count, leaseMs, liveOnly);
  }

  /** How many locations are due now and not held (waiting for a place in some process). */
  dueCount(): Promise<number> {
    return this.#parts.readySet.dueCount();
  }

  /** How long until the location may be taken (ms, 0 if due now), or undefined if it has no work. */
  dueInMs(locationId: string): Promise<number | undefined> {
    return this.#parts.readySet.dueInMs(locationId);
  }

  /** Ends a turn (see TurnEnd). False when another process holds the location by now. */
  endLease(lease: Lease, end: TurnEnd): Promise<boolean> {
    return this.#parts.readySet.endLease(lease, end);
  }

  /** Extends a lease still in use; false when another process holds the location by now. */
  renewLease(lease: Lease, leaseMs: number): Promise<boolean> {
    return this.#parts.readySet.renewLease(lease, leaseMs);
  }

  // --- the delivery ledger (the budget is `budgets`: in memory, no Redis call per message) ----

  /** Before a post: was the message delivered already (counted as skipped), and is the job's lock (when given) still ours? */
  beforePost(locationId: string, key: string, lock: JobLock | undefined): Promise<BeforePost> {
    return this.#gate.beforePost(locationId, key, lock);
  }

  /** After a post HighLevel accepted: its ledger entry, before the job completes (retried until it lands). */
  recordDelivered(locationId: string, key: string, entry: LedgerEntry): Promise<void> {
    return this.#gate.recordDelivered(locationId, key, entry);
  }

  // --- outcomes and lookups ------------------------------------------------------------------

  /** A message of the location was dead-lettered (deliveries and skips are counted with the ledger). */
  countDead(locationId: string): Promise<void> {
    return this.#parts.outcomes.countDead(locationId);
  }

  /** Takes one of the location's lookups of this minute (every process shares them); false when they are spent. */
  takeLookup(locationId: string, perMinute: number): Promise<boolean> {
    return this.#parts.outcomes.takeLookup(locationId, perMinute);
  }

  /** Counts a lookup's result for `status` and metrics readers. */
  countLookup(locationId: string, result: LookupCount): Promise<void> {
    return this.#parts.outcomes.countLookup(locationId, result);
  }

  /** Counts a contact found or created by phone or email, for `status`. */
  countContact(locationId: string, created: boolean): Promise<void> {
    return this.#parts.outcomes.countContact(locationId, created);
  }

  /** Counts files uploaded, for `status`. */
  countUploads(locationId: string, files: number): Promise<void> {
    return this.#parts.outcomes.countUploads(locationId, files);
  }

  // --- holds ---------------------------------------------------------------------------------

  /** Stops the location in every process until resumed (credentials rejected, or none configured). */
  pause(locationId: string, reason: string): Promise<void> {
    return this.#parts.holds.pause(locationId, reason);
  }

  /** Records why the location waits until `until` (its daily budget is spent); the wait itself is the turn's end. */
  park(locationId: string, until: number, reason: string): Promise<void> {
    return this.#parts.holds.park(locationId, until, reason);
  }

  /** Starts a paused (or parked) location again, due now in every process; returns what held it. */
  resume(locationId: string): Promise<LocationHold | undefined> {
    return this.#parts.holds.resume(locationId);
  }

  hold(locationId: string): Promise<LocationHold | undefined> {
    return this.#parts.holds.hold(locationId);
  }

  // --- after Redis lost writes ---------------------------------------------------------------

  /** Writes this process's recent ledger entries back whenever Redis comes back as another server (see LedgerWriteBack). */
  watchForLoss(onRestored?: (report: RestoreReport) => void): () => void {
    return this.#ledger.watchForLoss(onRestored);
  }

  /** Ledger entries whose write failed and is being retried; resolves once every one is written. */
  ledgerWrites(): Promise<number> {
    return this.#ledger.ledgerWrites();
  }

  /** Puts back what the shared structures lost when Redis changed (see repair.ts). */
  repairAfterLoss(signal?: AbortSignal): Promise<RepairReport | undefined> {
    return repairAfterLoss({ redis: this.#redis, prefix: this.#o.prefix, ledger: this.#ledger, ...this.#parts, snapshot: (ids) => this.snapshot(ids) }, signal);
  }

  // --- the read side (metrics) ---------------------------------------------------------------

  snapshot(locationIds: readonly string[]): Promise<LocationSnapshot[]> {
    return snapshot({ redis: this.#redis, prefix: this.#o.prefix, ...this.#parts, ...optional(this.#o) }, locationIds);
  }

  knownCount(): Promise<number> {
    return this.#parts.registry.knownCount();
  }

  active(): Promise<string[]> {
    return this.#parts.registry.active();
  }
}

function optional(o: LocationReaderOptions): Pick<LocationReaderOptions, 'budget' | 'resetOffsetMs'> {
  return { ...(o.budget === undefined ? {} : { budget: o.budget }), ...(o.resetOffsetMs === undefined ? {} : { resetOffsetMs: o.resetOffsetMs }) };
}
