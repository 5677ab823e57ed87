/**
 * Delivery of one job: the heart of the worker. Parse the job again, skip it if the ledger says
 * HighLevel already has it, take a rate slot, POST, classify the answer and act on it:
 * record a delivery in the ledger before completing; dead-letter a final failure before failing;
 * hand location-level answers (401, 429, a spent budget) to the location, never to the message.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { jobDataSchema, type JobData } from '@ghl-ingest/schema';
import {
  coerceError,
  deadLetterAdded,
  locationParked,
  locationPaused,
  type DeadLetterRecord,
  type DeadLetters,
  type FailureClass,
  type LedgerEntry,
  type HeldBudget,
  type WorkerLocations,
  type Logger,
  type Notice,
} from '@ghl-ingest/queue';
import type { Job } from 'bullmq';
import { outageWait } from './backoff.ts';
import { apiHealth, classify, type Classification } from './classify.ts';
import type { HighLevelClient, PostResult } from './http-client.ts';
import { FileGone, needsPreparing, SourceUnavailable, StepFailed, type Preparer, type RequestKind, type StepRequests } from './prepare.ts';
import { mayHaveArrived, Reconciler, type LookupRequests, type LookupResult } from './reconcile.ts';
import type { Semaphore } from './semaphore.ts';
import type { Credential, Credentials } from './credentials.ts';
import type { LocationTurn } from './turn.ts';
import { jobLock } from './location-jobs.ts';
import { DeadLettered, LocationPaused, LocationWait, LockLost, RetryableDeliveryError, RetryLater, SlotFarAhead, WorkerStopping } from './signals.ts';

export type DeliveryOutcome = 'delivered' | 'skipped' | 'retrying' | 'dead-lettered' | 'rate-limited' | 'paused' | 'waiting' | 'api-down';

export interface DeliveryEvent {
  outcome: DeliveryOutcome;
  locationId: string;
  /** The import the message came with, if any. */
  importId?: string;
  /** The answer's HTTP status, when there was one. */
  status?: number;
  latencyMs?: number;
  failureClass?: FailureClass;
}

export interface DeliveryOptions {
  deadLetters: DeadLetters;
  credentials: Credentials;
  client: HighLevelClient;
  /** The locations' rate budgets, delivery ledger and holds, in Redis. */
  state: WorkerLocations;
  /**
   * A slot reserved further ahead than this (ms) is given back and the location waits its turn
   * instead, so a job does not hold one of the process's places while it sleeps. Default 2,000.
   */
  holdSlotMs?: number;
  /** Process-wide bound on requests in flight (WORKER_CONCURRENCY). */
  inFlight: Semaphore;
  logger: Logger;
  /** GHL_MAX_ATTEMPTS. */
  maxAttempts: number;
  /**
   * A job's lock (WORKER_LOCK_MS), ms. Default 30,000. A job whose lock was confirmed longer than
   * half of it ago (the process paused, say) confirms it again right before its post.
   */
  lockMs?: number;
  /** Default `<host>:<pid>`. */
  workerId?: string;
  now?: () => number;
  /** Told of every outcome (metrics). */
  onEvent?: (event: DeliveryEvent) => void;
  /** Test seam: runs after the ledger write and before the job completes (crash simulation). */
  afterLedgerWrite?: (job: Job) => Promise<void>;
  /**
   * GHL_RECONCILE: look a message up before posting it again after an unknown outcome (reconcile.ts).
   * `settleMs`: how long after a post HighLevel may still record it (its timeout, and a margin): a
   * lookup sooner could miss a request still on its way, so the location waits until then.
   * `perMinute`: the location's lookups a minute, from the share of its posts whose outcome was
   * unknown lately (`lookupsPerMinute`); past it a message waits, it is not posted blind.
   */
  reconcile?: { pages: number; perMinute: (locationId: string, unknownShare: number) => number; settleMs: number };
  /** Told of every lookup's result (metrics). */
  onLookup?: (result: LookupResult) => void;
  /** Told of every request sent to HighLevel: a post, a lookup's read, an upsert, an upload (metrics). */
  onRequest?: (kind: RequestKind) => void;
  /**
   * Contacts by phone or email and local files (prepare.ts): what a message needs before its post.
   * Without it, a message that needs either is dead-lettered.
   */
  preparer?: Preparer;
  /** NOTIFY_WEBHOOK_URL: told of a location paused or parked and of each dead letter written, right after (notify.ts). */
  notify?: (notice: Notice) => Promise<void>;
}

/** A job's hold on its lock while it is processed: checked with each slot, and again before a late post. */
interface Held {
  /** The location's turn in this process: its budget, and whether the process still holds it. */
  turn: LocationTurn;
  lock: { key: string; token: string } | undefined;
  /** Aborted when the dispatcher could not renew the lock. */
  signal: AbortSignal | undefined;
  /** When Redis last said the lock was ours (performance.now(): a pause of the process counts). */
  confirmedAt: number;
}

/** A job's return value in BullMQ's completed set. */
export interface DeliveryResult {
  messageId: string;
  skipped?: true;
}

export class Delivery {
  #stopping = new AbortController();
  /** The lookup before posting again (GHL_RECONCILE), and what it remembers. */
  readonly #reconciler: Reconciler | undefined;
  #o: Required<Omit<DeliveryOptions, 'afterLedgerWrite' | 'onEvent' | 'reconcile' | 'onLookup' | 'onRequest' | 'preparer' | 'notify'>> &
    Pick<DeliveryOptions, 'afterLedgerWrite' | 'onEvent' | 'reconcile' | 'onLookup' | 'onRequest' | 'preparer' | 'notify'>;

  constructor(options: DeliveryOptions) {
    this.#o = { workerId: `${hostname()}:${process.pid}`, now: Date.now, holdSlotMs: 2_000, lockMs: 30_000, ...options };
    const reconcile = options.reconcile;
    this.#reconciler =
      reconcile === undefined
        ? undefined
        : new Reconciler({
            client: options.client,
            pages: reconcile.pages,
            perMinute: reconcile.perMinute,
            state: options.state,
            now: this.#o.now,
            emit: (outcome, data) => this.#emit({ outcome, locationId: data.locationId, ...(outcome === 'delivered' ? importOf(data) : {}) }),
            onLookup: options.onLookup,
            onRequest: options.onRequest,
          });
  }

  /**
   * The processor, for a job of a location this process holds (`turn`: its budget). `lockLost`
   * aborts when the dispatcher could not renew the job's lock: another worker may hold the job by
   * then, so it posts nothing more (LockLost).
   */
  readonly process = async (job: Job, lockLost: AbortSignal | undefined, turn: LocationTurn): Promise<DeliveryResult> => {
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      const reason = `job data no longer parses: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
      return this.#deadLetter(job, undefined, 'invalid-job', reason, {});
    }
    const stored = parsed.data;
    let data = stored;
    const held: Held = {
      turn,
      lock: jobLock(job),
      signal: lockLost,
      confirmedAt: performance.now(),
    };
    // The job's context goes on every line. A pino child per job would carry it too, but costs
    // an allocation and a serialisation of its bindings per message on the hot path.
    const log = jobLogger(this.#o.logger, { jobId: job.id, locationId: data.locationId, attempt: job.attemptsMade + 1 });

    const credential = await this.#o.credentials.forLocation(data.locationId);
    if (credential.kind === 'paused') {
      await this.#pause(data.locationId, credential.reason);
      log.error({ reason: credential.reason }, 'paused: no usable token');
      this.#emit({ outcome: 'paused', locationId: data.locationId });
      throw new LocationPaused();
    }
    if (credential.kind === 'wait') {
      log.warn({ waitMs: Math.round(credential.ms), reason: credential.reason }, 'location waits for its token');
      this.#emit({ outcome: 'waiting', locationId: data.locationId });
      throw new LocationWait(credential.ms);
    }

    // An earlier post's outcome is unknown and that request may still be on its way to HighLevel:
    // look (below) once it cannot be. This message waits for that, not its location: its backoff
    // (a second or so) is shorter than the request's timeout, and the location's other messages
    // go on meanwhile. (A job taken again from a dead worker waited out its lock already, and the
    // dead process's sockets are closed.)
    const settled = data.unknownSince === undefined || this.#o.reconcile === undefined ? 0 : data.unknownSince + this.#o.reconcile.settleMs;
    if (this.#o.now() < settled) throw new RetryLater(settled - this.#o.now(), 'its earlier post may still reach HighLevel');
    // One Redis read (the ledger: already delivered? and the job's lock), then the budget, in memory.
    let taken = await this.#takeSlot(job, data, data.key, log, held);
    if (typeof taken !== 'string') return this.#skipped(data, taken, log);
    // Its contact by phone or email, its files: found, created, uploaded right before the post.
    if (this.#o.preparer?.needs(data) ?? needsPreparing(data)) {
      const prepared = await this.#prepare(job, data, credential, taken, log, held, turn);
      data = { ...data, body: prepared.body };
      // The ledger-check slot, when no step needed it (the contact was known), is the post's.
      taken = prepared.unusedSlot ?? (await this.#takeSlot(job, data, undefined, log, held));
      if (typeof taken !== 'string') return this.#skipped(data, taken, log);
    }
    // An earlier post's outcome is unknown: look before posting again (reconcile.ts).
    const reconciler = this.#reconciler;
    if (reconciler !== undefined && (data.unknownSince !== undefined || job.stalledCounter > 0)) {
      const looked = await reconciler.lookUp(job, data, credential.token, taken, this.#lookupRequests(job, data, log, held), log);
      if (looked.kind === 'found') return looked.result;
      taken = looked.slot ?? (await this.#takeSlot(job, data, data.key, log, held));
      if (typeof taken !== 'string') return this.#skipped(data, taken, log);
    }
    const slot = taken;

    // A place in flight first, then the slot's gate: the slot counts from the send on, so no
    // budget is spent while the request waits for a place. Live messages go first for both.
    const release = await this.#placeAndGate(turn.budget, slot, data.source === 'live');
    // The request holds its place until its outcome is recorded (the ledger written, or the
    // failure counted): a worker killed meanwhile can leave at most WORKER_CONCURRENCY messages
    // that HighLevel may hold and the ledger does not.
    try {
      // A token read before a wait for a slot may have changed meanwhile (an OAuth token reached
      // its refresh point; a tokens file was reloaded after a 401): ask again, from memory.
      const current = await this.#o.credentials.forLocation(data.locationId);
      const used = current.kind === 'token' ? current : credential;
      // The location's lease and the job's lock: another process may hold either by now (this
      // one paused, or its renewal failed), and then its budget is not ours to spend.
      if (!turn.holds() || !(await this.#stillOurs(job, held))) {
        turn.budget.release(slot);
        log.warn({ key: data.key }, 'job lock lost before posting (the process paused?): not posted, left to the worker that holds it');
        throw new LockLost();
      }
      this.#o.onRequest?.('post');
      const result = await this.#o.client.post(used.token, data.body);
      return await this.#answered(job, data, slot, result, log, used, turn, stored);
    } finally {
      release();
    }
  };

  /**
   * A slot of the location's budget for one request (waiting for it when it is near), or the
   * ledger's entry when `key` was delivered already (`key` undefined: a lookup's read, never in
   * the ledger). Throws LocationWait when the location must wait (its window is full far ahead, a
   * 429 or an outage, its daily budget spent), LockLost when the job is not this worker's now.
   */
  async #takeSlot(job: Job, data: JobData, key: string | undefined, log: JobLog, held: Held): Promise<string | LedgerEntry> {
    const slot = randomUUID();
    // A lock whose renewal failed was logged by the renewal; a lease that lapsed was not.
    if (held.signal?.aborted === true) throw new LockLost();
    if (!held.turn.holds()) {
      log.warn({ key: data.key }, "the location's lease lapsed or was taken (the process paused?): nothing posted, left to the stalled-job check");
      throw new LockLost();
    }
    if (key !== undefined) {
      const asked = performance.now();
      const before = await this.#o.state.beforePost(data.locationId, key, held.lock);
      if (before.kind === 'lock-lost') {
        log.warn({ key: data.key }, 'job lock lost (another worker may hold the job): nothing posted');
        throw new LockLost();
      }
      held.confirmedAt = asked;
      if (before.kind === 'delivered') return before.entry;
    }
    const budget = held.turn.budget;
    const taken = budget.take(slot, data.source === 'live');
    switch (taken.kind) {
      case 'parked':
        await this.#o.state.park(data.locationId, taken.until, 'daily budget spent');
        await this.#o.notify?.(locationParked(data.locationId, taken.until, 'daily budget spent'));
        log.warn({ until: new Date(taken.until).toISOString() }, 'parked: daily budget spent');
        this.#emit({ outcome: 'waiting', locationId: data.locationId });
        throw new LocationWait(taken.waitMs);
      case 'wait':
        this.#o.logger.debug({ jobId: job.id, locationId: data.locationId, waitMs: taken.waitMs }, 'location waits');
        this.#emit({ outcome: 'waiting', locationId: data.locationId });
        throw new LocationWait(taken.waitMs);
      case 'reserved':
        if (taken.sendInMs > this.#o.holdSlotMs) {
          // Far ahead: give the slot back and let the location wait its turn, holding nothing here.
          budget.release(slot);
          throw data.source === 'live' ? new LocationWait(taken.sendInMs) : new SlotFarAhead(taken.sendInMs);
        }
        await this.#sleepOrStop(budget, slot, taken.sendInMs);
        return slot;
      case 'go':
        return slot;
    }
  }

  /**
   * Whether the job's lock is still this worker's, right before a post: not if its renewal failed;
   * yes if Redis said so less than half a lock ago; else Redis is asked again, atomically with
   * extending the lock (BullMQ's extendLock compares the token): a process paused past its lock
   * (a VM pause, SIGSTOP) finds out here, before it posts what another worker may have posted.
   */
  async #stillOurs(job: Job, held: Held): Promise<boolean> {
    if (held.signal?.aborted === true) return false;
    if (held.lock === undefined || performance.now() - held.confirmedAt <= this.#o.lockMs / 2) return true;
    const asked = performance.now();
    if ((await job.extendLock(held.lock.token, this.#o.lockMs)) !== 1) return false;
    held.confirmedAt = asked;
    return true;
  }

  #skipped(data: JobData, entry: LedgerEntry, log: JobLog): DeliveryResult {
    log.info({ key: data.key, messageId: entry.messageId }, 'skipped: already delivered');
    this.#emit({ outcome: 'skipped', locationId: data.locationId, ...importOf(data) });
    return { messageId: entry.messageId, skipped: true };
  }

  /**
   * The body to post, once its contact is known and its files uploaded (prepare.ts). The first
   * request uses `slot` (taken with the ledger check); each further one takes its own; when none
   * was needed, `slot` comes back unused, for the post. A request
   * that failed is acted on as a post's answer would be: a 429 makes the location wait, a 401 goes
   * to the credentials, a refusal dead-letters with HighLevel's reason, the rest is retried.
   */
  async #prepare(
    job: Job,
    data: JobData,
    credential: Credential & { kind: 'token' },
    slot: string,
    log: JobLog,
    held: Held,
    turn: LocationTurn,
  ): Promise<{ body: JobData['body']; unusedSlot: string | undefined }> {
    const budget = turn.budget;
    const preparer = this.#o.preparer;
    if (preparer === undefined) {
      budget.release(slot);
      return this.#deadLetter(job, data, 'invalid-job', 'this worker cannot resolve contacts or upload files (no preparer)', {});
    }
    // The slot taken with the ledger check goes to the first request; each further one takes its own.
    const unused: { slot: string | undefined } = { slot };
    const requests: StepRequests = {
      slot: async () => {
        const s = unused.slot ?? ((await this.#takeSlot(job, data, undefined, log, held)) as string);
        unused.slot = undefined;
        return s;
      },
      send: async (s) => {
        if (!turn.holds() || !(await this.#stillOurs(job, held))) {
          budget.release(s);
          throw new LockLost();
        }
        await this.#gate(budget, s);
      },
      answered: (s, result) => void budget.answered(s, result.rate, apiHealth(result.outcome)),
      refuse: (s, retryAfterMs) => budget.refuse(s, retryAfterMs),
    };
    try {
      const body = await preparer.prepare(data, credential.token, requests);
      return { body, unusedSlot: unused.slot };
    } catch (error) {
      if (unused.slot !== undefined) budget.release(unused.slot);
      if (error instanceof FileGone) return this.#deadLetter(job, data, 'permanent', error.message, {});
      if (error instanceof SourceUnavailable) {
        const verdict = { class: 'transient' as const, reason: error.message, retryAfterMs: undefined, maxAttempts: undefined };
        return this.#retryOrDeadLetter(job, data, verdict, { status: undefined, latencyMs: 0, outcome: { kind: 'network' } }, log);
      }
      if (!(error instanceof StepFailed)) throw error;
      const { verdict, result } = error;
      const status = result.outcome.kind === 'answer' ? result.outcome.status : undefined;
      const body = result.outcome.kind === 'answer' ? result.outcome.body : undefined;
      const fields = { key: data.key, step: error.step, status, latencyMs: Math.round(result.latencyMs) };
      switch (verdict.class) {
        case 'rate-limited':
          log.warn({ ...fields, waitMs: error.waitMs }, 'rate limited: location waits');
          this.#emit({ outcome: 'rate-limited', locationId: data.locationId, status, latencyMs: result.latencyMs });
          throw new LocationWait(error.waitMs ?? 0);
        case 'credentials': {
          const next = await this.#o.credentials.rejected(data.locationId, credential);
          if (next !== undefined && next.kind !== 'paused') throw new LocationWait(next.kind === 'wait' ? next.ms : 0);
          const reason = next?.reason ?? verdict.reason;
          await this.#pause(data.locationId, reason);
          log.error({ ...fields, reason }, 'paused: credentials rejected');
          this.#emit({ outcome: 'paused', locationId: data.locationId, status });
          throw new LocationPaused();
        }
        case 'permanent': {
          const reason = `${stepName(error.step)}: ${verdict.reason.replace('refused the message', 'refused it')}`;
          log.warn({ ...fields, reason }, 'dead-lettered');
          return this.#deadLetter(job, data, 'permanent', reason, { status, body, latencyMs: result.latencyMs });
        }
        case 'suspect':
        case 'transient':
          return this.#retryOrDeadLetter(
            job,
            data,
            { ...verdict, reason: `${stepName(error.step)}: ${verdict.reason}` },
            { status, latencyMs: result.latencyMs, outcome: result.outcome },
            log,
          );
      }
    }
  }

  /** A lookup's reads spend the location's budget as posts do: through this job's turn and lock. */
  #lookupRequests(job: Job, data: JobData, log: JobLog, held: Held): LookupRequests {
    const budget = held.turn.budget;
    return {
      slot: async () => (await this.#takeSlot(job, data, undefined, log, held)) as string,
      send: (slot) => this.#gate(budget, slot),
      release: (slot) => budget.release(slot),
      answered: (slot, result) => void budget.answered(slot, result.kind === 'answer' ? result.rate : undefined, undefined),
      refuse: (slot) => budget.refuse(slot, undefined),
      recordDelivered: (entry) => this.#o.state.recordDelivered(data.locationId, data.key, entry),
    };
  }

  /** Classifies an answer (or a failure without one) and acts on it; see the README's table. */
  async #answered(
    job: Job,
    data: JobData,
    slot: string,
    result: PostResult,
    log: JobLog,
    credential: Credential & { kind: 'token' },
    turn: LocationTurn,
    stored: JobData,
  ): Promise<DeliveryResult> {
    const { outcome, latencyMs } = result;
    const status = outcome.kind === 'answer' ? outcome.status : undefined;
    const verdict = classify(outcome, this.#o.now());
    const fields = { key: data.key, status, code: outcome.kind === 'network' ? outcome.code : undefined, latencyMs: Math.round(latencyMs) };

    const health = apiHealth(outcome);
    this.#reconciler?.recordPost(data.locationId, verdict.class !== 'delivered' && mayHaveArrived(outcome));

    switch (verdict.class) {
      case 'delivered': {
        if (verdict.conversationId !== undefined && data.body.contactId !== undefined)
          this.#reconciler?.rememberConversation(data.locationId, data.body.contactId, verdict.conversationId);
        // The ledger entry is written before the job completes.
        turn.budget.answered(slot, result.rate, health);
        await this.#o.state.recordDelivered(data.locationId, data.key, { messageId: verdict.messageId, at: this.#o.now() });
        await this.#o.afterLedgerWrite?.(job);
        log.info({ ...fields, messageId: verdict.messageId }, 'delivered');
        this.#emit({ outcome: 'delivered', locationId: data.locationId, status, latencyMs, ...importOf(data) });
        return { messageId: verdict.messageId };
      }
      case 'rate-limited': {
        const waitMs = turn.budget.refuse(slot, verdict.retryAfterMs);
        log.warn({ ...fields, waitMs }, 'rate limited: location waits');
        this.#emit({ outcome: 'rate-limited', locationId: data.locationId, status, latencyMs });
        throw new LocationWait(waitMs);
      }
      case 'credentials': {
        turn.budget.answered(slot, result.rate, health);
        // An OAuth access token is refreshed (once) and the message goes again, costing no attempt.
        const next = await this.#o.credentials.rejected(data.locationId, credential);
        if (next !== undefined && next.kind !== 'paused') {
          log.warn({ ...fields }, 'access token refused (401): refreshed, the message goes again');
          this.#emit({ outcome: 'waiting', locationId: data.locationId, status, latencyMs });
          throw new LocationWait(next.kind === 'wait' ? next.ms : 0);
        }
        const reason = next?.reason ?? verdict.reason;
        await this.#pause(data.locationId, reason);
        log.error({ ...fields, reason }, 'paused: credentials rejected');
        this.#emit({ outcome: 'paused', locationId: data.locationId, status, latencyMs });
        throw new LocationPaused();
      }
      case 'permanent':
        turn.budget.answered(slot, result.rate, health);
        log.warn({ ...fields, reason: verdict.reason }, 'dead-lettered');
        return this.#deadLetter(job, data, 'permanent', verdict.reason, { status, body: outcome.kind === 'answer' ? outcome.body : undefined, latencyMs });
      case 'suspect':
      case 'transient': {
        const failures = turn.budget.answered(slot, result.rate, health);
        // HighLevel may hold it: the next attempt looks before posting again.
        if (this.#o.reconcile !== undefined && mayHaveArrived(outcome) && data.unknownSince === undefined) {
          // The job keeps what the producer gave it: its contact and files are resolved again (from
          // the directory, and by a fresh upload) on the next attempt.
          stored.unknownSince = this.#o.now();
          await job.updateData(stored);
        }
        const waitMs = outageWait(failures);
        if (waitMs !== undefined) {
          // HighLevel is down, not this message: no attempt spent; the location waits, then one probes.
          const waited = turn.budget.refuse(slot, waitMs);
          log.warn({ ...fields, failures, waitMs: waited, reason: verdict.reason }, 'HighLevel down: location waits');
          this.#emit({ outcome: 'api-down', locationId: data.locationId, ...(status === undefined ? {} : { status }), latencyMs });
          throw new LocationWait(waited);
        }
        return this.#retryOrDeadLetter(job, data, verdict, { ...fields, outcome }, log);
      }
    }
  }

  /** Stops waits for reserved slots (the worker is stopping): their jobs go back to the queue. */
  stop(): void {
    this.#stopping.abort();
  }

  /**
   * A place in flight, then the gate of the slot reserved (which sends only while fewer than max
   * requests count; if the window is still full it says how much longer, and the place is given
   * back meanwhile). A 429 met meanwhile makes the location wait. Returns the place's release.
   */
  async #placeAndGate(budget: HeldBudget, slot: string, live: boolean): Promise<() => void> {
    for (;;) {
      let release: () => void;
      try {
        release = await this.#o.inFlight.acquire(this.#stopping.signal, live);
      } catch {
        // The worker is stopping: this job goes back to the queue, its slot back to the location.
        budget.release(slot);
        throw new WorkerStopping();
      }
      const gate = budget.proceed(slot);
      if (gate.kind === 'go') return release;
      release();
      if (gate.kind === 'wait') throw new LocationWait(gate.waitMs);
      await this.#sleepOrStop(budget, slot, gate.waitMs);
    }
  }

  /** The gate of a lookup's read (reads take no place in flight, as before). */
  async #gate(budget: HeldBudget, slot: string): Promise<void> {
    for (;;) {
      const gate = budget.proceed(slot);
      if (gate.kind === 'go') return;
      if (gate.kind === 'wait') throw new LocationWait(gate.waitMs);
      await this.#sleepOrStop(budget, slot, gate.waitMs);
    }
  }

  /** Sleeps until a reserved slot's time; a stopping worker gives the slot back. */
  async #sleepOrStop(budget: HeldBudget, slot: string, ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.#stopping.signal });
    } catch {
      budget.release(slot);
      throw new WorkerStopping();
    }
  }

  async #retryOrDeadLetter(
    job: Job,
    data: JobData,
    verdict: Extract<Classification, { class: 'suspect' | 'transient' }>,
    fields: { status: number | undefined; latencyMs: number; outcome: { kind: string; body?: string } },
    log: JobLog,
  ): Promise<never> {
    const attempt = job.attemptsMade + 1;
    const allowed = Math.min(this.#o.maxAttempts, verdict.maxAttempts ?? Infinity, job.opts.attempts ?? this.#o.maxAttempts);
    const body = 'body' in fields.outcome ? fields.outcome.body : undefined;
    if (attempt >= allowed) {
      log.warn({ status: fields.status, latencyMs: fields.latencyMs, reason: verdict.reason, attempts: attempt }, 'dead-lettered');
      return this.#deadLetter(job, data, verdict.class, `${verdict.reason} (after ${attempt} attempt${attempt === 1 ? '' : 's'})`, {
        status: fields.status,
        body,
        latencyMs: fields.latencyMs,
      });
    }
    if (job.attemptsMade === 0) await this.#rememberFirstAttempt(job);
    log.warn({ status: fields.status, latencyMs: fields.latencyMs, reason: verdict.reason }, 'retrying');
    this.#emit({
      outcome: 'retrying',
      locationId: data.locationId,
      ...(fields.status === undefined ? {} : { status: fields.status }),
      latencyMs: fields.latencyMs,
    });
    const retryAfterMs = verdict.class === 'transient' ? verdict.retryAfterMs : undefined;
    throw new RetryableDeliveryError(verdict.class === 'suspect' ? 'API_SUSPECT' : 'API_TRANSIENT', verdict.reason, retryAfterMs);
  }

  /** Writes the dead-letter record, then fails the job for good: in that order, always. */
  async #deadLetter(
    job: Job,
    data: JobData | undefined,
    failureClass: FailureClass,
    reason: string,
    answer: { status?: number | undefined; body?: string | undefined; latencyMs?: number | undefined },
  ): Promise<never> {
    const raw = job.data as Partial<JobData> | undefined;
    const record: Omit<DeadLetterRecord, 'v' | 'id'> = {
      locationId: data?.locationId ?? stringOr(raw?.locationId, 'unknown'),
      key: data?.key ?? stringOr(raw?.key, String(job.id)),
      job: data,
      class: failureClass,
      reason,
      attempts: job.attemptsMade + 1,
      firstAttemptAt: firstAttemptOf(job),
      lastAttemptAt: this.#o.now(),
      worker: this.#o.workerId,
    };
    if (data === undefined) record.raw = job.data;
    if (answer.status !== undefined) record.httpStatus = answer.status;
    if (answer.body !== undefined && answer.body !== '') record.apiError = answer.body;
    if (await this.#o.deadLetters.write(record)) await this.#o.notify?.(deadLetterAdded(record));
    this.#emit({
      outcome: 'dead-lettered',
      locationId: record.locationId,
      ...(data === undefined ? {} : importOf(data)),
      failureClass,
      ...(answer.status === undefined ? {} : { status: answer.status }),
      ...(answer.latencyMs === undefined ? {} : { latencyMs: answer.latencyMs }),
    });
    // The record is written, so failing for good is safe.
    throw new DeadLettered(`dead-lettered (${failureClass}): ${reason}`);
  }

  /**
   * Stops the location in every process. Notified only when it was not paused already: the jobs
   * in flight with it meet the same refusal (and the outbox drops a second event within a minute).
   */
  async #pause(locationId: string, reason: string): Promise<void> {
    const notify = this.#o.notify;
    const before = notify === undefined ? undefined : await this.#o.state.hold(locationId);
    await this.#o.state.pause(locationId, reason);
    if (notify !== undefined && before?.state !== 'paused') await notify(locationPaused(locationId, reason));
  }

  async #rememberFirstAttempt(job: Job): Promise<void> {
    try {
      await job.updateProgress({ firstAttemptAt: job.processedOn ?? this.#o.now() });
    } catch (error) {
      this.#o.logger.debug({ err: coerceError(error), jobId: job.id }, 'could not record first attempt time');
    }
  }

  #emit(event: DeliveryEvent): void {
    this.#o.onEvent?.(event);
  }
}

/** Logs one job's lines: object first, a short constant message second. */
interface JobLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A JobLog that adds the job's context to each line (see `process`). */
function jobLogger(root: Logger, context: Record<string, unknown>): JobLog {
  return {
    info: (fields, message) => root.info({ ...context, ...fields }, message),
    warn: (fields, message) => root.warn({ ...context, ...fields }, message),
    error: (fields, message) => root.error({ ...context, ...fields }, message),
  };
}

function importOf(data: JobData): { importId?: string } {
  return data.importId === undefined ? {} : { importId: data.importId };
}

function firstAttemptOf(job: Job): number {
  const progress = job.progress as { firstAttemptAt?: unknown } | number | undefined;
  if (typeof progress === 'object' && typeof progress.firstAttemptAt === 'number') return progress.firstAttemptAt;
  return job.processedOn ?? job.timestamp;
}

function stepName(step: StepFailed['step']): string {
  return step === 'contact'
    ? 'finding or creating the contact'
    : step === 'conversation'
      ? "finding or creating the contact's conversation"
      : 'uploading the files';
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' && value !== '' ? value : fallback;
}
