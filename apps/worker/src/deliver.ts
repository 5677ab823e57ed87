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
  IngestError,
  type DeadLetterRecord,
  type DeadLetters,
  type FailureClass,
  type LedgerEntry,
  type LocationState,
  type Logger,
} from '@ghl-ingest/queue';
import type { Job } from 'bullmq';
import { outageWait } from './backoff.ts';
import { apiHealth, classify, type Classification } from './classify.ts';
import type { HighLevelClient, PostResult, ReadResult } from './http-client.ts';
import { decide, mayHaveArrived, messagesPageSchema, UnknownShare, type LookupResult, type MessagesPage } from './reconcile.ts';
import type { Semaphore } from './semaphore.ts';
import type { Credential, Credentials } from './credentials.ts';
import { DeadLettered, LocationPaused, LocationWait, LockLost, RetryLater, WorkerStopping } from './signals.ts';

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
  state: LocationState;
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
  /** Told of every request sent to HighLevel: a post, or a lookup's read (metrics). */
  onRequest?: (kind: 'post' | 'lookup') => void;
}

/** A job's hold on its lock while it is processed: checked with each slot, and again before a late post. */
interface Held {
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

/** Thrown for a failure that BullMQ should retry with backoff; carries HighLevel's Retry-After. */
export class RetryableDeliveryError extends IngestError {
  override name = 'RetryableDeliveryError';
  readonly retryAfterMs: number | undefined;

  constructor(code: 'API_TRANSIENT' | 'API_SUSPECT', message: string, retryAfterMs: number | undefined) {
    super(code, message);
    this.retryAfterMs = retryAfterMs;
  }
}

export class Delivery {
  #stopping = new AbortController();
  /**
   * Waits this process set on locations (429, outage): epoch ms. A job that took its slot before
   * the wait and then waited for a place in flight looks here before posting, at no Redis cost;
   * other processes' waits it met at `acquire`.
   */
  #waits = new Map<string, number>();
  /** Location and contact → conversation id, from answers (see #rememberConversation). */
  readonly #conversations = new Map<string, string>();
  /** The share of each location's posts whose outcome was unknown lately: sizes its lookup budget. */
  readonly #unknown = new UnknownShare();
  /** Lookups at a location that HighLevel left unanswered in a row: how long its next one waits. */
  readonly #lookupFailures = new Map<string, number>();
  #o: Required<Omit<DeliveryOptions, 'afterLedgerWrite' | 'onEvent' | 'reconcile' | 'onLookup' | 'onRequest'>> &
    Pick<DeliveryOptions, 'afterLedgerWrite' | 'onEvent' | 'reconcile' | 'onLookup' | 'onRequest'>;

  constructor(options: DeliveryOptions) {
    this.#o = { workerId: `${hostname()}:${process.pid}`, now: Date.now, holdSlotMs: 2_000, lockMs: 30_000, ...options };
  }

  /**
   * The processor. `lockLost` aborts when the dispatcher could not renew the job's lock: another
   * worker may hold the job by then, so it posts nothing more (LockLost).
   */
  readonly process = async (job: Job, lockLost?: AbortSignal): Promise<DeliveryResult> => {
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      const reason = `job data no longer parses: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
      return this.#deadLetter(job, undefined, 'invalid-job', reason, {});
    }
    const data = parsed.data;
    // BullMQ's lock key of the job (`<prefix>:<queue>:<id>:lock`, in the location's hash slot).
    const held: Held = {
      lock: job.token === undefined ? undefined : { key: `${job.prefix}:${job.queueName}:${String(job.id)}:lock`, token: job.token },
      signal: lockLost,
      confirmedAt: performance.now(),
    };
    // The job's context goes on every line. A pino child per job would carry it too, but costs
    // an allocation and a serialisation of its bindings per message on the hot path.
    const log = jobLogger(this.#o.logger, { jobId: job.id, locationId: data.locationId, attempt: job.attemptsMade + 1 });

    const credential = await this.#o.credentials.forLocation(data.locationId);
    if (credential.kind === 'paused') {
      await this.#o.state.pause(data.locationId, credential.reason);
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
    // look (below) once it cannot be. (A job taken again from a dead worker waited out its lock
    // already, and the dead process's sockets are closed.)
    const settled = data.unknownSince === undefined || this.#o.reconcile === undefined ? 0 : data.unknownSince + this.#o.reconcile.settleMs;
    if (this.#o.now() < settled) throw new LocationWait(settled - this.#o.now());
    // One Redis call: the ledger (already delivered?) and the location's budget (a slot, now or later).
    let taken = await this.#takeSlot(job, data, data.key, log, held);
    if (typeof taken !== 'string') return this.#skipped(data, taken, log);
    // An earlier post's outcome is unknown: look before posting again (reconcile.ts).
    const reconcile = this.#o.reconcile;
    if (reconcile !== undefined && (data.unknownSince !== undefined || job.stalledCounter > 0)) {
      const looked = await this.#lookUp(reconcile, job, data, credential.token, taken, log, held);
      if (looked.kind === 'found') return looked.result;
      taken = looked.slot ?? (await this.#takeSlot(job, data, data.key, log, held));
      if (typeof taken !== 'string') return this.#skipped(data, taken, log);
    }
    const slot = taken;

    let release: () => void;
    try {
      // Live messages (a sync process waiting on them) go before backfill for a place in flight.
      release = await this.#o.inFlight.acquire(this.#stopping.signal, data.source === 'live');
    } catch {
      // The worker is stopping: this job goes back to the queue, its slot back to the location.
      await this.#o.state.release(data.locationId, slot);
      throw new WorkerStopping();
    }
    // The request counts as in flight until its outcome is recorded (the ledger written, or the
    // failure counted): a worker killed meanwhile can leave at most WORKER_CONCURRENCY messages
    // that HighLevel may hold and the ledger does not.
    try {
      const waitUntil = this.#waits.get(data.locationId) ?? 0;
      if (waitUntil > Date.now()) {
        // The location was told to wait while this job waited for a place: the slot goes back.
        await this.#o.state.release(data.locationId, slot);
        throw new LocationWait(waitUntil - Date.now());
      }
      // A token read before a wait for a slot may have reached its refresh point meanwhile: ask again
      // (from memory while it is fresh), so a short-lived OAuth token is not sent expired.
      const current = credential.oauth ? await this.#o.credentials.forLocation(data.locationId) : credential;
      const used = current.kind === 'token' ? current : credential;
      if (!(await this.#stillOurs(job, held))) {
        await this.#o.state.release(data.locationId, slot);
        log.warn({ key: data.key }, 'job lock lost before posting (the process paused?): not posted, left to the worker that holds it');
        throw new LockLost();
      }
      this.#o.onRequest?.('post');
      const result = await this.#o.client.post(used.token, data.body);
      return await this.#answered(job, data, slot, result, log, used);
    } finally {
      release();
    }
  };

  /**
   * A slot of the location's budget for one request (waiting for it when it is near), or the
   * ledger's entry when `key` was delivered already. Throws LocationWait when the location must
   * wait (its window is full far ahead, a 429 or an outage, its daily budget spent).
   */
  async #takeSlot(job: Job, data: JobData, key: string, log: JobLog, held: Held): Promise<string | LedgerEntry> {
    const slot = randomUUID();
    if (held.signal?.aborted === true) throw new LockLost();
    const asked = performance.now();
    const acquired = await this.#o.state.acquire(data.locationId, key, slot, held.lock);
    if (acquired.kind !== 'lock-lost') held.confirmedAt = asked;
    switch (acquired.kind) {
      case 'lock-lost':
        log.warn({ key: data.key }, 'job lock lost (another worker may hold the job): nothing posted');
        throw new LockLost();
      case 'delivered':
        return acquired.entry;
      case 'parked':
        await this.#o.state.park(data.locationId, acquired.until, 'daily budget spent');
        log.warn({ until: new Date(acquired.until).toISOString() }, 'parked: daily budget spent');
        this.#emit({ outcome: 'waiting', locationId: data.locationId });
        throw new LocationWait(acquired.waitMs);
      case 'wait':
        this.#o.logger.debug({ jobId: job.id, locationId: data.locationId, waitMs: acquired.waitMs }, 'location waits');
        this.#emit({ outcome: 'waiting', locationId: data.locationId });
        throw new LocationWait(acquired.waitMs);
      case 'reserved':
        if (acquired.sendInMs > this.#o.holdSlotMs) {
          // Far ahead: give the slot back and let the location wait its turn, holding nothing here.
          await this.#o.state.release(data.locationId, slot);
          throw new LocationWait(acquired.sendInMs);
        }
        if (acquired.sendInMs > 0) await this.#awaitSlot(data.locationId, slot, acquired.sendInMs);
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
   * Reads the message's conversation back (reconcile.ts), each read on a slot of the location's
   * budget like any request (the first on the slot taken for the post), within the location's
   * lookups per minute. Found: the delivery is recorded with HighLevel's message id, in the same
   * call that settles the last read, and nothing is posted. Otherwise the caller posts; `slot` is
   * handed back when no read used it.
   */
  async #lookUp(
    reconcile: NonNullable<DeliveryOptions['reconcile']>,
    job: Job,
    data: JobData,
    token: string,
    firstSlot: string,
    log: JobLog,
    held: Held,
  ): Promise<{ kind: 'found'; result: DeliveryResult } | { kind: 'post'; slot: string | undefined }> {
    const altId = data.body.altId;
    const undecided = async (reason: Extract<LookupResult, { kind: 'undecided' }>['reason'], detail: string, slot: string | undefined) => {
      await this.#lookedUp(data, { kind: 'undecided', reason, detail }, log);
      return { kind: 'post' as const, slot };
    };
    if (altId === undefined) return undecided('no-altid', 'the message has no altId (enqueued before every message got one)', firstSlot);
    const perMinute = reconcile.perMinute(data.locationId, this.#unknown.share(data.locationId, this.#o.now()));
    if (!(await this.#o.state.takeLookup(data.locationId, perMinute))) {
      // Never posted blind for want of our own budget: the message waits for the next minute's.
      await this.#o.state.release(data.locationId, firstSlot);
      const waitMs = 60_000 - (Date.now() % 60_000) + Math.floor(Math.random() * 1_000);
      log.info({ key: data.key, perMinute, waitMs }, 'lookup budget spent: message waits for the next minute');
      this.#emit({ outcome: 'waiting', locationId: data.locationId });
      throw new RetryLater(waitMs, `the location's ${perMinute} lookups of this minute are spent`);
    }
    // Since when HighLevel may hold it: its own date (history), else its first unknown post; a minute's slack for clocks.
    const since =
      (data.body.date === undefined
        ? (data.unknownSince ?? job.processedOn ?? job.timestamp)
        : Math.min(Date.parse(data.body.date), data.unknownSince ?? Date.now())) - 60_000;
    let slot: string | undefined = firstSlot;
    const read = async (path: string, query: Record<string, string | undefined>): Promise<{ result: ReadResult; slot: string }> => {
      // A lookup's own key is never in the ledger: the slot is all it can be.
      const taken = slot ?? ((await this.#takeSlot(job, data, `lookup-${randomUUID()}`, log, held)) as string);
      slot = undefined;
      this.#o.onRequest?.('lookup');
      const result = await this.#o.client.get(token, path, query);
      return { result, slot: taken };
    };
    // A read's slot is settled like a post's; when it found the message, the same call writes its ledger entry.
    const settle = (s: string, result: ReadResult, delivered?: LedgerEntry) =>
      this.#o.state.settle(
        data.locationId,
        delivered === undefined ? `lookup-${s}` : data.key,
        s,
        result.kind === 'answer' ? result.rate : undefined,
        delivered,
      );
    const refused = async (s: string, result: ReadResult): Promise<{ kind: 'post'; slot: string | undefined } | undefined> => {
      if (result.kind === 'network' || (result.status >= 500 && result.status <= 599)) {
        // HighLevel could tell, but did not answer: the message waits and looks again (1 s doubling to 30 s).
        await settle(s, result);
        const failures = (this.#lookupFailures.get(data.locationId) ?? 0) + 1;
        this.#lookupFailures.set(data.locationId, failures);
        if (this.#lookupFailures.size > 1_000) this.#lookupFailures.delete(this.#lookupFailures.keys().next().value as string);
        const waitMs = Math.min(30_000, 1_000 * 2 ** (failures - 1));
        const why = result.kind === 'network' ? result.message : `HighLevel answered ${result.status}`;
        log.warn({ key: data.key, waitMs, reason: why }, 'lookup got no answer: message waits to look again');
        this.#emit({ outcome: 'waiting', locationId: data.locationId });
        throw new RetryLater(waitMs, `the lookup got no answer: ${why}`);
      }
      this.#lookupFailures.delete(data.locationId);
      if (result.status === 429) {
        const waitMs = await this.#o.state.refuse(data.locationId, s, undefined);
        throw new LocationWait(waitMs);
      }
      if (result.status >= 200 && result.status < 300) return undefined;
      await settle(s, result);
      if (result.status === 401 || result.status === 403)
        return undecided('no-read-scope', `HighLevel refused the read (${result.status}): the token needs conversations/message.readonly`, undefined);
      if (result.status === 404) return undecided('no-conversation', 'HighLevel does not know the conversation', undefined);
      return undecided('error', `HighLevel answered the lookup ${result.status}`, undefined);
    };

    // The conversation: the message's own, else its contact's as a recent answer named it, else a search.
    let conversationId =
      data.body.conversationId ??
      (data.body.contactId === undefined ? undefined : this.#conversations.get(conversationKey(data.locationId, data.body.contactId)));
    if (conversationId === undefined) {
      if (data.body.contactId === undefined) return undecided('no-conversation', 'the message names neither a conversation nor a contact', slot);
      const found = await read('conversations/search', { locationId: data.locationId, contactId: data.body.contactId });
      const stop = await refused(found.slot, found.result);
      if (stop !== undefined) return stop;
      await settle(found.slot, found.result);
      conversationId = conversationOf(found.result);
      if (conversationId === undefined) return undecided('no-conversation', `no conversation found for contact ${data.body.contactId}`, undefined);
    }
    const pages: MessagesPage[] = [];
    let lastMessageId: string | undefined;
    for (let n = 0; n < reconcile.pages; n += 1) {
      const got = await read(`conversations/${encodeURIComponent(conversationId)}/messages`, {
        limit: '100',
        ...(lastMessageId === undefined ? {} : { lastMessageId }),
      });
      const stop = await refused(got.slot, got.result);
      if (stop !== undefined) return stop;
      const page = messagesPageSchema.safeParse((got.result as { json: unknown }).json);
      if (!page.success) {
        await settle(got.slot, got.result);
        return undecided('error', 'the messages page had an unexpected shape', undefined);
      }
      pages.push(page.data);
      const verdict = decide(pages, altId, since, !page.data.nextPage);
      const last = n === reconcile.pages - 1;
      if (verdict.kind === 'found') {
        await settle(got.slot, got.result, { messageId: verdict.messageId, at: this.#o.now() });
        await this.#lookedUp(data, verdict, log);
        log.info({ key: data.key, messageId: verdict.messageId }, 'delivered (found at HighLevel after an unknown outcome; not posted again)');
        this.#emit({ outcome: 'delivered', locationId: data.locationId, ...importOf(data) });
        return { kind: 'found', result: { messageId: verdict.messageId } };
      }
      await settle(got.slot, got.result);
      if (verdict.kind === 'absent' || verdict.reason !== 'too-deep' || last || page.data.lastMessageId === undefined) {
        await this.#lookedUp(data, verdict, log);
        return { kind: 'post', slot: undefined };
      }
      lastMessageId = page.data.lastMessageId;
    }
    return undecided('too-deep', `not found in ${reconcile.pages} page(s)`, undefined);
  }

  async #lookedUp(data: JobData, result: LookupResult, log: JobLog): Promise<void> {
    await this.#o.state.countLookup(data.locationId, result.kind);
    this.#o.onLookup?.(result);
    if (result.kind === 'undecided') log.warn({ key: data.key, reason: result.reason, detail: result.detail }, 'lookup undecided: posting as without one');
    else if (result.kind === 'absent') log.info({ key: data.key }, 'lookup: not at HighLevel; posting');
  }

  /** Classifies an answer (or a failure without one) and acts on it; see the README's table. */
  async #answered(job: Job, data: JobData, slot: string, result: PostResult, log: JobLog, credential: Credential & { kind: 'token' }): Promise<DeliveryResult> {
    const { outcome, latencyMs } = result;
    const status = outcome.kind === 'answer' ? outcome.status : undefined;
    const verdict = classify(outcome, this.#o.now());
    const fields = { key: data.key, status, code: outcome.kind === 'network' ? outcome.code : undefined, latencyMs: Math.round(latencyMs) };

    const health = apiHealth(outcome);
    if (this.#o.reconcile !== undefined) this.#unknown.record(data.locationId, verdict.class !== 'delivered' && mayHaveArrived(outcome), this.#o.now());

    switch (verdict.class) {
      case 'delivered': {
        if (verdict.conversationId !== undefined && data.body.contactId !== undefined)
          this.#rememberConversation(data.locationId, data.body.contactId, verdict.conversationId);
        // Ledger entry and slot accounting in one call, before the job completes.
        await this.#o.state.settle(data.locationId, data.key, slot, result.rate, { messageId: verdict.messageId, at: this.#o.now() }, health);
        await this.#o.afterLedgerWrite?.(job);
        log.info({ ...fields, messageId: verdict.messageId }, 'delivered');
        this.#emit({ outcome: 'delivered', locationId: data.locationId, status, latencyMs, ...importOf(data) });
        return { messageId: verdict.messageId };
      }
      case 'rate-limited': {
        const waitMs = await this.#o.state.refuse(data.locationId, slot, verdict.retryAfterMs);
        this.#rememberWait(data.locationId, waitMs);
        log.warn({ ...fields, waitMs }, 'rate limited: location waits');
        this.#emit({ outcome: 'rate-limited', locationId: data.locationId, status, latencyMs });
        throw new LocationWait(waitMs);
      }
      case 'credentials': {
        await this.#o.state.settle(data.locationId, data.key, slot, result.rate, undefined, health);
        // An OAuth access token is refreshed (once) and the message goes again, costing no attempt.
        const next = await this.#o.credentials.rejected(data.locationId, credential);
        if (next !== undefined && next.kind !== 'paused') {
          log.warn({ ...fields }, 'access token refused (401): refreshed, the message goes again');
          this.#emit({ outcome: 'waiting', locationId: data.locationId, status, latencyMs });
          throw new LocationWait(next.kind === 'wait' ? next.ms : 0);
        }
        const reason = next?.reason ?? verdict.reason;
        await this.#o.state.pause(data.locationId, reason);
        log.error({ ...fields, reason }, 'paused: credentials rejected');
        this.#emit({ outcome: 'paused', locationId: data.locationId, status, latencyMs });
        throw new LocationPaused();
      }
      case 'permanent':
        await this.#o.state.settle(data.locationId, data.key, slot, result.rate, undefined, health);
        log.warn({ ...fields, reason: verdict.reason }, 'dead-lettered');
        return this.#deadLetter(job, data, 'permanent', verdict.reason, { status, body: outcome.kind === 'answer' ? outcome.body : undefined, latencyMs });
      case 'suspect':
      case 'transient': {
        const failures = await this.#o.state.settle(data.locationId, data.key, slot, result.rate, undefined, health);
        // HighLevel may hold it: the next attempt looks before posting again.
        if (this.#o.reconcile !== undefined && mayHaveArrived(outcome) && data.unknownSince === undefined) {
          data.unknownSince = this.#o.now();
          await job.updateData(data);
        }
        const waitMs = outageWait(failures);
        if (waitMs !== undefined) {
          // HighLevel is down, not this message: no attempt spent; the location waits, then one probes.
          const waited = await this.#o.state.refuse(data.locationId, slot, waitMs);
          this.#rememberWait(data.locationId, waited);
          log.warn({ ...fields, failures, waitMs: waited, reason: verdict.reason }, 'HighLevel down: location waits');
          this.#emit({ outcome: 'api-down', locationId: data.locationId, ...(status === undefined ? {} : { status }), latencyMs });
          throw new LocationWait(waited);
        }
        return this.#retryOrDeadLetter(job, data, verdict, { ...fields, outcome }, log);
      }
    }
  }

  /** A contact's conversation, from HighLevel's answers (one per contact): a lookup then needs no search. Bounded: the oldest go first. */
  #rememberConversation(locationId: string, contactId: string, conversationId: string): void {
    const key = conversationKey(locationId, contactId);
    this.#conversations.delete(key);
    this.#conversations.set(key, conversationId);
    if (this.#conversations.size > 20_000) this.#conversations.delete(this.#conversations.keys().next().value as string);
  }

  #rememberWait(locationId: string, waitMs: number): void {
    const now = Date.now();
    // Bounded by the locations waiting now: ended waits are dropped as the map grows.
    if (this.#waits.size >= 1_000) for (const [id, until] of this.#waits) if (until <= now) this.#waits.delete(id);
    this.#waits.set(locationId, now + waitMs);
  }

  /** Stops waits for reserved slots (the worker is stopping): their jobs go back to the queue. */
  stop(): void {
    this.#stopping.abort();
  }

  /**
   * Waits for a slot reserved in the future, then passes the limiter's gate (which sends only
   * while fewer than max requests count; if the window is still full it says how much longer).
   * A 429 seen meanwhile by any process makes the location wait. A stopping worker gives the slot back.
   */
  async #awaitSlot(locationId: string, slot: string, ms: number): Promise<void> {
    let waitMs = ms;
    for (;;) {
      try {
        await sleep(waitMs, undefined, { signal: this.#stopping.signal });
      } catch {
        await this.#o.state.release(locationId, slot);
        throw new WorkerStopping();
      }
      const gate = await this.#o.state.proceed(locationId, slot);
      if (gate.kind === 'go') return;
      if (gate.kind === 'wait') throw new LocationWait(gate.waitMs);
      waitMs = gate.waitMs;
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
    await this.#o.deadLetters.write(record);
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

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' && value !== '' ? value : fallback;
}

/** A contact's key in the remembered conversations (a location's contact ids are its own). */
function conversationKey(locationId: string, contactId: string): string {
  return `${locationId}\n${contactId}`;
}

/** The id of the conversation a search found, if any. */
function conversationOf(result: ReadResult): string | undefined {
  if (result.kind !== 'answer') return undefined;
  const list = (result.json as { conversations?: { id?: unknown }[] } | undefined)?.conversations;
  const id = Array.isArray(list) ? list[0]?.id : undefined;
  return typeof id === 'string' ? id : undefined;
}
