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
import { coerceError, IngestError, type DeadLetterRecord, type DeadLetters, type FailureClass, type LocationState, type Logger } from '@ghl-ingest/queue';
import type { Job } from 'bullmq';
import { outageWait } from './backoff.ts';
import { apiHealth, classify, type Classification } from './classify.ts';
import type { HighLevelClient, PostResult } from './http-client.ts';
import type { Semaphore } from './semaphore.ts';
import type { TokenStore } from './tokens.ts';
import { DeadLettered, LocationPaused, LocationWait, WorkerStopping } from './signals.ts';

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
  tokens: TokenStore;
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
  /** Default `<host>:<pid>`. */
  workerId?: string;
  now?: () => number;
  /** Told of every outcome (metrics). */
  onEvent?: (event: DeliveryEvent) => void;
  /** Test seam: runs after the ledger write and before the job completes (crash simulation). */
  afterLedgerWrite?: (job: Job) => Promise<void>;
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
  #o: Required<Omit<DeliveryOptions, 'afterLedgerWrite' | 'onEvent'>> & Pick<DeliveryOptions, 'afterLedgerWrite' | 'onEvent'>;

  constructor(options: DeliveryOptions) {
    this.#o = { workerId: `${hostname()}:${process.pid}`, now: Date.now, holdSlotMs: 2_000, ...options };
  }

  /** The BullMQ processor. */
  readonly process = async (job: Job): Promise<DeliveryResult> => {
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      const reason = `job data no longer parses: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
      return this.#deadLetter(job, undefined, 'invalid-job', reason, {});
    }
    const data = parsed.data;
    // The job's context goes on every line. A pino child per job would carry it too, but costs
    // an allocation and a serialisation of its bindings per message on the hot path.
    const log = jobLogger(this.#o.logger, { jobId: job.id, locationId: data.locationId, attempt: job.attemptsMade + 1 });

    const token = this.#o.tokens.forLocation(data.locationId);
    if (token === undefined) {
      await this.#o.state.pause(data.locationId, 'no token configured for this location (GHL_TOKENS_FILE or GHL_TOKEN)');
      log.error({}, 'paused: no token configured');
      this.#emit({ outcome: 'paused', locationId: data.locationId });
      throw new LocationPaused();
    }

    // One Redis call: the ledger (already delivered?) and the location's budget (a slot, now or later).
    const slot = randomUUID();
    const acquired = await this.#o.state.acquire(data.locationId, data.key, slot);
    switch (acquired.kind) {
      case 'delivered':
        log.info({ key: data.key, messageId: acquired.entry.messageId }, 'skipped: already delivered');
        this.#emit({ outcome: 'skipped', locationId: data.locationId, ...importOf(data) });
        return { messageId: acquired.entry.messageId, skipped: true };
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
    }

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
      const result = await this.#o.client.post(token, data.body);
      return await this.#answered(job, data, slot, result, log);
    } finally {
      release();
    }
  };

  /** Classifies an answer (or a failure without one) and acts on it; see the README's table. */
  async #answered(job: Job, data: JobData, slot: string, result: PostResult, log: JobLog): Promise<DeliveryResult> {
    const { outcome, latencyMs } = result;
    const status = outcome.kind === 'answer' ? outcome.status : undefined;
    const verdict = classify(outcome, this.#o.now());
    const fields = { key: data.key, status, code: outcome.kind === 'network' ? outcome.code : undefined, latencyMs: Math.round(latencyMs) };

    const health = apiHealth(outcome);

    switch (verdict.class) {
      case 'delivered': {
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
        await this.#o.state.pause(data.locationId, verdict.reason);
        log.error({ ...fields, reason: verdict.reason }, 'paused: credentials rejected');
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
