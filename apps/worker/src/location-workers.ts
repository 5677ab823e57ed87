/**
 * One BullMQ queue per location, and in each worker process one BullMQ Worker per location:
 * a location's backlog never stands in front of another's first message, and a location-wide
 * wait (429, a spent budget) or pause (401) is the queue's own rate limit or pause, shared by
 * every process through Redis. Locations are found in the registry the producers write, when
 * announced and by a periodic scan.
 */
import { hostname } from 'node:os';
import type {
  DeadLetters} from '@ghl-ingest/queue';
import {
  clearHold,
  coerceError,
  createRedis,
  keysFor,
  listLocations,
  locationQueueName,
  writeHold,
  type Logger,
} from '@ghl-ingest/queue';
import { jobDataSchema } from '@ghl-ingest/schema';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import { RetryableDeliveryError, type DeliveryResult, type LocationControl } from './deliver.ts';

export interface LocationWorkersOptions {
  /** Shared non-blocking connection (worker role). Each Worker adds its own blocking one. */
  connection: Redis;
  redisUrl: string;
  prefix: string;
  processor: (job: Job) => Promise<DeliveryResult>;
  deadLetters: DeadLetters;
  /** Jobs of a location active in this process at most (some wait for a reserved slot). */
  concurrency: (locationId: string) => number;
  logger: Logger;
  /** How often to look for new locations and for failed jobs without a dead-letter record (ms). Default 5,000. */
  scanIntervalMs?: number;
  /** Serve only these locations (sharding across processes); default all. */
  only?: (locationId: string) => boolean;
  random?: () => number;
  /** Default: base 1 s, cap 5 min. */
  backoff?: BackoffOptions;
  /** Told of each location this process starts serving (the dashboard lists its queue). */
  onServe?: (locationId: string, queue: Queue) => void;
  /** Job lock and stalled-check interval in ms (WORKER_LOCK_MS). */
  lockMs: number;
}

export class LocationWorkers implements LocationControl {
  #o: LocationWorkersOptions;
  #workers = new Map<string, Worker>();
  #queues = new Map<string, Queue>();
  #subscriber: Redis | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closing = false;
  #log: Logger;

  constructor(options: LocationWorkersOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'location-workers' });
  }

  async start(): Promise<void> {
    const keys = keysFor(this.#o.prefix);
    this.#subscriber = createRedis(this.#o.redisUrl, 'worker', `${this.#o.prefix}:worker-subscriber`);
    this.#subscriber.on('error', (error: unknown) => this.#log.warn({ err: coerceError(error) }, 'subscriber connection error'));
    this.#subscriber.on('message', (_channel: string, message: string) => {
      for (const id of message.split(',')) this.#serve(id);
    });
    await this.#subscriber.subscribe(keys.locationsChannel);
    await this.scan();
    this.#timer = setInterval(() => {
      this.scan().catch((error: unknown) => this.#log.warn({ err: coerceError(error) }, 'scan failed'));
    }, this.#o.scanIntervalMs ?? 5_000);
    this.#timer.unref();
  }

  /** Serves every registered location not yet served, and dead-letters failed jobs that lack a record. */
  async scan(): Promise<void> {
    for (const id of await listLocations(this.#o.connection, this.#o.prefix)) this.#serve(id);
    for (const [locationId, queue] of this.#queues) await this.#reconcile(locationId, queue);
  }

  get locations(): string[] {
    return [...this.#workers.keys()];
  }

  /** The queue of each location this process serves. */
  get queues(): ReadonlyMap<string, Queue> {
    return this.#queues;
  }

  queue(locationId: string): Queue {
    let queue = this.#queues.get(locationId);
    if (queue === undefined) {
      queue = new Queue(locationQueueName(locationId), { connection: this.#o.connection, prefix: this.#o.prefix });
      queue.on('error', (error: unknown) => this.#log.warn({ err: coerceError(error), locationId }, 'queue error'));
      this.#queues.set(locationId, queue);
    }
    return queue;
  }

  async rateLimit(locationId: string, ms: number): Promise<void> {
    await this.queue(locationId).rateLimit(Math.max(1, Math.ceil(ms)));
  }

  async pause(locationId: string, reason: string): Promise<void> {
    await writeHold(this.#o.connection, this.#o.prefix, locationId, { state: 'paused', reason, since: Date.now() });
    await this.queue(locationId).pause();
  }

  async park(locationId: string, until: number, reason: string): Promise<void> {
    await writeHold(this.#o.connection, this.#o.prefix, locationId, { state: 'parked', reason, since: Date.now(), until });
    await this.rateLimit(locationId, until - Date.now());
  }

  async resume(locationId: string): Promise<void> {
    await clearHold(this.#o.connection, this.#o.prefix, locationId);
    await this.queue(locationId).resume();
  }

  /** Stops taking jobs, lets in-flight ones finish for up to `deadlineMs`, then cuts them off. */
  async close(deadlineMs: number): Promise<{ forced: boolean }> {
    this.#closing = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    const workers = [...this.#workers.values()];
    let timer: NodeJS.Timeout | undefined;
    const graceful = Promise.all(workers.map((w) => w.close())).then(() => false);
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), deadlineMs);
    });
    const forced = await Promise.race([graceful, deadline]);
    clearTimeout(timer);
    // Past the deadline, cut the connections: a second close() would only return the first
    // one's promise. Jobs cut off stay active with a lock that expires; another worker takes
    // them again (stalled-job recovery), and the ledger keeps that from posting twice.
    if (forced) {
      await Promise.all(
        workers.map((w) =>
          w.disconnect().catch((error: unknown) => this.#log.debug({ err: coerceError(error) }, 'disconnect failed')),
        ),
      );
    }
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
    await this.#subscriber?.quit().catch(() => this.#subscriber?.disconnect());
    return { forced };
  }

  #serve(locationId: string): void {
    if (this.#closing || this.#workers.has(locationId) || !/^[A-Za-z0-9_-]+$/.test(locationId)) return;
    if (this.#o.only !== undefined && !this.#o.only(locationId)) return;
    this.queue(locationId);
    const random = this.#o.random ?? Math.random;
    const worker = new Worker(locationQueueName(locationId), this.#o.processor, {
      connection: this.#o.connection,
      prefix: this.#o.prefix,
      concurrency: this.#o.concurrency(locationId),
      name: `${hostname()}:${process.pid}`,
      maxStalledCount: 10,
      lockDuration: this.#o.lockMs,
      stalledInterval: this.#o.lockMs,
      // A limiter that never limits by itself: without one, BullMQ's moveToActive ignores the
      // queue's rate-limit key, and queue.rateLimit() (how a location waits in every process)
      // would hold only the process that set it. Its window is 1 ms because after a
      // RateLimitError a worker sleeps for that key's remaining TTL: a longer window would put
      // it to sleep after every 401 or 429, holding jobs it had already fetched.
      limiter: { max: 1e12, duration: 1 },
      // A rate-limited worker re-checks at least this often (ms). BullMQ's 30 s default can hold
      // a shutdown for as long, when close() races a new rate-limit sleep.
      maximumRateLimitDelay: 5_000,
      removeOnComplete: { age: 24 * 3600, count: 1000 },
      removeOnFail: { count: 1000 },
      settings: {
        backoffStrategy: (attempt: number, _type?: string, error?: Error) =>
          backoffDelay(
            attempt,
            random,
            error instanceof RetryableDeliveryError ? error.retryAfterMs : undefined,
            this.#o.backoff ?? DEFAULT_BACKOFF,
          ),
      },
    });
    worker.on('error', (error: unknown) => this.#log.warn({ err: coerceError(error), locationId }, 'worker error'));
    worker.on('failed', (job: Job | undefined, error: Error) => {
      // Failures the processor dead-lettered itself are already recorded; others (a job that
      // stalled too often) are recorded here and, should this process die first, by the next scan.
      if (job !== undefined && job.finishedOn !== undefined && !error.message.startsWith('dead-lettered')) {
        void this.#recordFailed(locationId, job);
      }
    });
    this.#workers.set(locationId, worker);
    this.#o.onServe?.(locationId, this.queue(locationId));
    this.#log.info({ locationId }, 'serving location');
  }

  async #reconcile(locationId: string, queue: Queue): Promise<void> {
    const failed = await queue.getFailed(0, 99);
    for (const job of failed) {
      if (job.failedReason.startsWith('dead-lettered')) continue;
      await this.#recordFailed(locationId, job);
    }
  }

  async #recordFailed(locationId: string, job: Job): Promise<void> {
    try {
      const parsed = jobDataSchema.safeParse(job.data);
      const key = parsed.success ? parsed.data.key : String(job.id);
      await this.#o.deadLetters.write({
        locationId,
        key,
        job: parsed.success ? parsed.data : undefined,
        ...(parsed.success ? {} : { raw: job.data }),
        class: 'stalled',
        reason: `failed outside delivery: ${job.failedReason}`,
        attempts: job.attemptsMade,
        firstAttemptAt: job.processedOn ?? job.timestamp,
        lastAttemptAt: job.finishedOn ?? Date.now(),
        worker: `${hostname()}:${process.pid}`,
      });
      // Recorded: the copy in BullMQ's failed set has nothing more to tell.
      await job.remove();
    } catch (error) {
      this.#log.error({ err: coerceError(error), locationId, jobId: job.id }, 'could not dead-letter a failed job');
    }
  }
}
