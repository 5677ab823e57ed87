/**
 * Putting jobs on the location queues: the one place job options are decided, for imports,
 * the intake, the library API and redrives alike. The job id is the message's idempotency key,
 * so adding a message that is already queued is a no-op.
 */
import type { JobData } from '@ghl-ingest/schema';
import { Queue, type JobsOptions } from 'bullmq';
import type { RedisClient } from './connection.ts';
import { locationQueueName } from './keys.ts';
import { queueTelemetry } from './tracing.ts';
import { LocationState } from './location-state.ts';

/** The worker's backoff strategy (exponential, full jitter; see apps/worker/src/backoff.ts). */
export const BACKOFF_TYPE = 'ghl-full-jitter';
/** Job name; kept short, it is stored with every job. */
export const JOB_NAME = 'm';
/**
 * Live messages (intake, library) go before backfill (imports) without BullMQ priorities: backfill
 * joins the back of the wait list, live joins the end workers take from next (`lifo`). Priorities
 * would cost a sorted set per location, and a rate-limited prioritized job returns to that set
 * without the marker that wakes a worker, stalling the location for BullMQ's drain delay (5 s).
 * The price: when live messages themselves queue up, the newest goes first.
 */
export function jobOptions(data: JobData, maxAttempts: number): JobsOptions {
  const options: JobsOptions = { jobId: data.key, attempts: maxAttempts, backoff: { type: BACKOFF_TYPE } };
  if (data.source === 'live') options.lifo = true;
  return options;
}

export class Enqueuer {
  #connection: RedisClient;
  #prefix: string;
  #maxAttempts: number;
  #queues = new Map<string, Queue<JobData>>();
  #registered = new Set<string>();
  #state: LocationState;

  constructor(connection: RedisClient, prefix: string, maxAttempts: number) {
    this.#connection = connection;
    this.#prefix = prefix;
    this.#maxAttempts = maxAttempts;
    this.#state = new LocationState(connection, { prefix });
  }

  queue(locationId: string): Queue<JobData> {
    let queue = this.#queues.get(locationId);
    if (queue === undefined) {
      const telemetry = queueTelemetry();
      queue = new Queue<JobData>(locationQueueName(locationId), {
        connection: this.#connection,
        prefix: this.#prefix,
        ...(telemetry === undefined ? {} : { telemetry }),
      });
      // A Redis failure reaches the caller through the command that failed.
      queue.on('error', () => undefined);
      this.#queues.set(locationId, queue);
    }
    return queue;
  }

  /**
   * Adds the jobs (one `addBulk` per location), then makes their locations due in the ready set
   * (after the jobs exist, so a worker that takes the location finds them) and known to `status`.
   */
  async enqueue(items: readonly JobData[]): Promise<void> {
    const byLocation = new Map<string, JobData[]>();
    for (const item of items) {
      const list = byLocation.get(item.locationId);
      if (list === undefined) byLocation.set(item.locationId, [item]);
      else list.push(item);
    }
    await Promise.all(
      [...byLocation].map(([locationId, list]) =>
        this.queue(locationId).addBulk(list.map((data) => ({ name: JOB_NAME, data, opts: jobOptions(data, this.#maxAttempts) }))),
      ),
    );
    const live = [...byLocation].filter(([, list]) => list.some((d) => d.source === 'live')).map(([id]) => id);
    const backfill = [...byLocation.keys()].filter((id) => !live.includes(id));
    await Promise.all([this.#state.markReady(live, true), this.#state.markReady(backfill, false)]);
    const fresh = [...byLocation.keys()].filter((id) => !this.#registered.has(id));
    if (fresh.length > 0) {
      await this.#state.register(fresh);
      for (const id of fresh) this.#registered.add(id);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
  }
}
