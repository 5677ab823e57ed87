/**
 * Putting jobs on the location queues: the one place job options are decided, for imports,
 * the intake, the library API and redrives alike. The job id is the message's idempotency key,
 * so adding a message that is already queued is a no-op. A message that failed for good (or a
 * completed job the ledger does not know was delivered) does not block its own id: the finished
 * job is removed first (`commands/replace-finished.lua`), and its dead-letter record dropped, so
 * a fixed dead letter imported or sent again is queued. A message the ledger knows was delivered
 * is not added at all.
 */
import type { JobData } from '@ghl-ingest/schema';
import type { JobsOptions, Queue } from 'bullmq';
import type { RedisClient } from './connection.ts';
import { DeadLetters } from './dead-letter.ts';
import { deadLetterId, keysFor, type Keys } from './keys.ts';
import { queueTelemetry } from './tracing.ts';
import { ProducerLocations } from './location/index.ts';
import { LocationQueues } from './location/queues.ts';
import { defineScripts } from './scripts.ts';

/**
 * What `enqueue` did with a message: `queued`; `requeued` (a failed job, or a completed one
 * without a ledger entry, had its id and was replaced); `delivered` (the ledger knows HighLevel
 * has it: not added); `pending` (a job with its id is waiting or running already: left as it is).
 */
export type EnqueueOutcome = 'queued' | 'requeued' | 'delivered' | 'pending';
/** replace-finished.lua's codes, in order. */
const OUTCOMES: readonly EnqueueOutcome[] = ['queued', 'requeued', 'delivered', 'pending'];

/** The worker's backoff strategy (exponential, full jitter; see apps/worker/src/backoff.ts). */
export const BACKOFF_TYPE = 'ghl-full-jitter';
/** Job name; kept short, it is stored with every job. */
export const JOB_NAME = 'm';
/**
 * Live messages (intake, library) go before backfill (imports), and each kind in the order it
 * came: live jobs join BullMQ's wait list (first in, first out), backfill its prioritized set at
 * priority 1 (first in, first out among themselves), and BullMQ takes from the wait list first.
 * (Live jobs used to join the taking end of the wait list, `lifo`: the newest live message went
 * first.) The prioritized set costs a sorted-set insert per backfill job; no BullMQ rate limiter is
 * used, so a prioritized job never waits for a marker.
 */
export function jobOptions(data: JobData, maxAttempts: number): JobsOptions {
  const options: JobsOptions = { jobId: data.key, attempts: maxAttempts, backoff: { type: BACKOFF_TYPE } };
  if (data.source !== 'live') options.priority = 1;
  return options;
}

export class Enqueuer {
  #connection: RedisClient;
  #maxAttempts: number;
  /** Every location's queue object this producer used, until close(): a send may be using one at any time. */
  #queues: LocationQueues;
  #registered = new Set<string>();
  #locations: ProducerLocations;
  #keys: Keys;
  #deadLetters: DeadLetters;

  constructor(connection: RedisClient, prefix: string, maxAttempts: number) {
    this.#connection = connection;
    this.#maxAttempts = maxAttempts;
    defineScripts(connection); // replace-finished among them
    const telemetry = queueTelemetry();
    // A Redis failure reaches the caller through the command that failed (the default onError).
    this.#queues = new LocationQueues({ connection, prefix, ...(telemetry === undefined ? {} : { queue: { telemetry } }) });
    this.#locations = new ProducerLocations(connection, { prefix });
    this.#keys = keysFor(prefix);
    this.#deadLetters = new DeadLetters(connection, prefix);
  }

  queue(locationId: string): Queue<JobData> {
    return this.#queues.get(locationId) as Queue<JobData>;
  }

  /**
   * Adds the jobs (one `addBulk` per location, after freeing the ids of finished jobs), then makes
   * their locations due in the ready set (after the jobs exist, so a worker that takes the location
   * finds them) and known to `status`. Returns what it did with each item, in order.
   */
  async enqueue(items: readonly JobData[]): Promise<EnqueueOutcome[]> {
    const byLocation = new Map<string, JobData[]>();
    for (const item of items) {
      const list = byLocation.get(item.locationId);
      if (list === undefined) byLocation.set(item.locationId, [item]);
      else list.push(item);
    }
    const outcomes = new Map<JobData, EnqueueOutcome>();
    await Promise.all(
      [...byLocation].map(async ([locationId, list]) => {
        const queue = this.queue(locationId);
        const codes = await this.#connection.ghlReplaceFinished(
          3 + 2 * list.length,
          queue.keys.failed ?? '',
          queue.keys.completed ?? '',
          queue.keys.events ?? '',
          ...list.flatMap((data) => [queue.toKey(data.key), this.#keys.ledger(locationId, data.key)]),
          ...list.map((data) => data.key),
        );
        list.forEach((data, i) => outcomes.set(data, OUTCOMES[codes[i] ?? 0] ?? 'queued'));
        // The dead-letter record goes before the add: once the job exists a worker may fail it
        // again and write a new record, which must stay. (A message the ledger has is delivered:
        // its record is out of date.) Between the two the message is in neither place, but the
        // caller has not been told it was accepted yet.
        const settled = list.filter((data) => outcomes.get(data) !== 'pending');
        await this.#deadLetters.drop(settled.map((data) => deadLetterId(locationId, data.key)));
        const add = list.filter((data) => outcomes.get(data) === 'queued' || outcomes.get(data) === 'requeued');
        if (add.length > 0) await queue.addBulk(add.map((data) => ({ name: JOB_NAME, data, opts: jobOptions(data, this.#maxAttempts) })));
      }),
    );
    const live = [...byLocation].filter(([, list]) => list.some((d) => d.source === 'live')).map(([id]) => id);
    const backfill = [...byLocation.keys()].filter((id) => !live.includes(id));
    await Promise.all([this.#locations.markReady(live, true), this.#locations.markReady(backfill, false)]);
    const fresh = [...byLocation.keys()].filter((id) => !this.#registered.has(id));
    if (fresh.length > 0) {
      await this.#locations.register(fresh);
      for (const id of fresh) this.#registered.add(id);
    }
    return items.map((item) => outcomes.get(item) ?? 'queued');
  }

  async close(): Promise<void> {
    await Promise.all([this.#queues.close(), this.#deadLetters.close()]);
  }
}
