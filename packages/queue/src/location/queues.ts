/**
 * A location's BullMQ queue, and what we read of BullMQ's own key layout. Owns: building the
 * `Queue` object of a location (`loc.{<id>}`; the one place it is built), a bounded cache of them,
 * and the names and encodings of BullMQ's keys (`toKey('wait')`, a delayed job's score): BullMQ's
 * internals are read here and nowhere else.
 *
 * A queue object opens no connection of its own (it shares the one given), but it holds a few
 * dozen key names and listeners: a process serving thousands of locations keeps the latest ones.
 */
import { Job, Queue, QueueKeys, type QueueOptions } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import { mixesSlots, type RedisClient } from '../connection.ts';
import { locationQueueName } from '../keys.ts';

/**
 * Options of a location's queue object beyond a plain `Queue`'s: BullMQ's scripts read the job
 * lock, the stalled-job check, what to keep of finished jobs and the backoff from a worker's
 * options, so a dispatcher that moves jobs itself gives them to the queue object instead.
 */
export interface LocationQueueOptions {
  /** Ms a job's lock lasts before it counts as stalled. BullMQ's default: 30,000. */
  lockDuration?: number;
  /** Ms between stalled-job checks. BullMQ's default: 30,000. */
  stalledInterval?: number;
  /** Times a job may stall before it fails. BullMQ's default: 1. */
  maxStalledCount?: number;
  /** What to keep of completed jobs (`{ age }` in seconds, `{ count }`). Default: all. */
  removeOnComplete?: { age?: number; count?: number };
  /** What to keep of failed jobs. Default: all. */
  removeOnFail?: { age?: number; count?: number };
  /** BullMQ settings; `backoffStrategy` computes a custom backoff (ms) for a retry. */
  settings?: { backoffStrategy?: (attempt: number, type?: string, error?: Error) => number };
  /** Skip BullMQ's Redis version check (an INFO per queue object) when the connection was checked once. Default: false. */
  skipVersionCheck?: boolean;
  /** The worker's name, as BullMQ records it with the jobs it takes. */
  name?: string;
  /** OpenTelemetry integration (see tracing.ts). Default: none. */
  telemetry?: QueueOptions['telemetry'];
}

export interface LocationQueuesOptions {
  connection: RedisClient;
  prefix: string;
  /** Options of every queue object built (see LocationQueueOptions). */
  queue?: LocationQueueOptions;
  /** Queue objects kept at most; the least recently used idle one is closed past that. Default: unbounded. */
  max?: number;
  /** A location whose queue is in use (a lease held, say): never evicted, whatever `max`. Default: none is. */
  inUse?: (locationId: string) => boolean;
  /**
   * A queue object's error (a Redis failure; the command that failed rejects too). Default:
   * ignored, since the caller hears of it through that command.
   */
  onError?: (error: unknown, locationId: string) => void;
}

/** Builds one location's queue object: the one place a location's `Queue` is made. */
export function locationQueue(options: Omit<LocationQueuesOptions, 'max' | 'inUse'>, locationId: string): Queue {
  const queue = new Queue(locationQueueName(locationId), {
    connection: options.connection,
    prefix: options.prefix,
    ...options.queue,
  } as QueueOptions);
  const onError = options.onError;
  queue.on('error', onError === undefined ? () => undefined : (error: unknown) => onError(error, locationId));
  return queue;
}

/** The queue objects of the locations used lately, built on first use and reused (see LocationQueuesOptions). */
export class LocationQueues {
  readonly #o: LocationQueuesOptions;
  /** In order of use, the latest last. */
  readonly #queues = new Map<string, Queue>();

  constructor(options: LocationQueuesOptions) {
    this.#o = options;
  }

  /** The location's queue object, built if it has none. */
  get(locationId: string): Queue {
    const cached = this.#queues.get(locationId);
    if (cached !== undefined) {
      this.#queues.delete(locationId);
      this.#queues.set(locationId, cached);
      return cached;
    }
    const queue = locationQueue(this.#o, locationId);
    this.#queues.set(locationId, queue);
    this.#evict();
    return queue;
  }

  /** Runs `fn` on the location's cached queue object, or on one built for this call and closed after. */
  async with<T>(locationId: string, fn: (queue: Queue) => Promise<T>): Promise<T> {
    const cached = this.#queues.get(locationId);
    if (cached !== undefined) return fn(cached);
    const queue = locationQueue(this.#o, locationId);
    try {
      return await fn(queue);
    } finally {
      await queue.close();
    }
  }

  get size(): number {
    return this.#queues.size;
  }

  /** Closes every queue object kept (a failing close is not the caller's concern: the connection is shared). */
  async close(): Promise<void> {
    const queues = [...this.#queues.values()];
    this.#queues.clear();
    await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
  }

  #evict(): void {
    const max = this.#o.max ?? Infinity;
    if (this.#queues.size <= max) return;
    for (const [id, old] of this.#queues) {
      if (this.#o.inUse?.(id) === true) continue;
      this.#queues.delete(id);
      void old.close().catch(() => undefined);
      if (this.#queues.size <= max) return;
    }
  }
}

/** A message's job as its location's queue holds it (`readQueuedJob`). */
export interface QueuedJob {
  /** BullMQ's state; `waiting` includes its prioritized set (backfill) and a paused queue's jobs. */
  state: 'waiting' | 'active' | 'delayed' | 'completed' | 'failed';
  /** Attempts that failed so far (BullMQ's `attemptsMade`). */
  attemptsMade: number;
  /** Attempts it may make in all (its `attempts` option). */
  attempts: number;
  /** When a delayed job is due, epoch ms; undefined when it is not delayed. */
  dueAt: number | undefined;
  /** The last failure's message, if it failed at all. */
  failedReason: string | undefined;
  /** What a completed job returned (the worker's `{ messageId }`). */
  returnValue: unknown;
  /** Epoch ms when it completed or failed for good. */
  finishedOn: number | undefined;
}

/**
 * The job `jobId` (a message key) of a location's queue as BullMQ holds it, or undefined when it
 * holds none: its hash and where it is, in one MULTI (all in the location's slot), so that its
 * state, attempts and due time are of one moment. The lists are searched as BullMQ's own
 * `getState` searches them (LPOS).
 */
export async function readQueuedJob(redis: RedisClient, prefix: string, locationId: string, jobId: string): Promise<QueuedJob | undefined> {
  const q = bullKeys(prefix, locationId).toKey;
  const replies = await redis
    .multi()
    .hgetall(new QueueKeys(prefix).toKey(locationQueueName(locationId), jobId))
    .zscore(q('completed'), jobId)
    .zscore(q('failed'), jobId)
    .zscore(q('delayed'), jobId)
    .zscore(q('prioritized'), jobId)
    .lpos(q('active'), jobId)
    .lpos(q('wait'), jobId)
    .lpos(q('paused'), jobId)
    .exec();
  const [hash, completed, failed, delayed, prioritized, active, wait, paused] = (replies ?? []).map(([error, value]) => {
    if (error !== null) throw error;
    return value;
  });
  if (typeof hash !== 'object' || hash === null || Object.keys(hash).length === 0) return undefined;
  const found = (reply: unknown) => reply !== null && reply !== undefined;
  let state: QueuedJob['state'];
  if (found(completed)) state = 'completed';
  else if (found(failed)) state = 'failed';
  else if (found(delayed)) state = 'delayed';
  else if (found(active)) state = 'active';
  else if (found(prioritized) || found(wait) || found(paused)) state = 'waiting';
  else return undefined; // a hash in no list or set: nothing BullMQ would take
  // BullMQ's stored form, as its own reader decodes it: numbers as text, options as JSON.
  const raw = hash as Partial<Record<string, string>>;
  const number = (text: string | undefined) => (text === undefined || text === '' ? undefined : Number(text));
  return {
    state,
    attemptsMade: number(raw.attemptsMade ?? raw.atm) ?? 0,
    attempts: Job.optsFromJSON(raw.opts).attempts ?? 1,
    dueAt: state === 'delayed' ? delayedDueAt(delayed as string) : undefined,
    failedReason: raw.failedReason === '' ? undefined : raw.failedReason,
    returnValue: parseJson(raw.returnvalue),
    finishedOn: number(raw.finishedOn),
  };
}

/** A stored JSON value (a job's return value), or the text itself when it is not JSON. */
function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** BullMQ's key types of a queue that our reads name. */
export type BullKeyType = 'wait' | 'paused' | 'prioritized' | 'active' | 'delayed' | 'failed' | 'completed' | 'events' | 'meta';

/** The BullMQ key builder of a location's queue, for reads outside BullMQ's own calls (`toKey('wait')`). */
export function bullKeys(prefix: string, locationId: string): { toKey: (type: BullKeyType) => string; job: (jobId: string) => string } {
  const keys = new QueueKeys(prefix);
  const name = locationQueueName(locationId);
  return { toKey: (type) => keys.toKey(name, type), job: (jobId) => keys.toKey(name, jobId) };
}

/** When a delayed job is due (epoch ms), from its score in BullMQ's delayed set (timestamp × 4096 + a counter). */
export function delayedDueAt(score: number | string): number {
  return Math.floor(Number(score) / 4096);
}

/** The location of a BullMQ key that exists only while a queue holds jobs (`<prefix>:loc.{<id>}:wait` and the like), or undefined. */
export function locationOfWorkKey(prefix: string, key: string): string | undefined {
  return WORK_KEY.exec(key.slice(prefix.length))?.[1];
}

/** A SCAN pattern matching every location queue's keys (the work keys among them). */
export function locationKeysPattern(prefix: string): string {
  return `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:loc.{*}:*`;
}

const WORK_KEY = /^:loc\.\{([A-Za-z0-9_-]+)\}:(?:wait|paused|prioritized|delayed|active)$/;

/** A location's queue counts, as one snapshot field: waiting (incl. paused and prioritized), active, delayed (retries), failed, paused. */
export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  paused: boolean;
}

/** Queues the reads of a location's queue counts on `p` (all in the location's slot). */
export function readQueueCounts(p: ChainableCommander, prefix: string, locationId: string): void {
  const q = bullKeys(prefix, locationId).toKey;
  p.llen(q('wait')).llen(q('paused')).zcard(q('prioritized')).llen(q('active')).zcard(q('delayed')).zcard(q('failed')).hget(q('meta'), 'paused');
}

/** Reads the replies of `readQueueCounts`, in its order. */
export function parseQueueCounts(replies: readonly unknown[]): QueueCounts {
  const n = (x: unknown) => Number(x ?? 0);
  const [wait, paused, prioritized, active, delayed, failed, meta] = replies;
  return { waiting: n(wait) + n(paused) + n(prioritized), active: n(active), delayed: n(delayed), failed: n(failed), paused: meta !== null };
}

/**
 * Where a waiting job is, by the kind of message (enqueue.ts `jobOptions`): live ones in BullMQ's
 * wait list, backfill (imports) in its prioritized set.
 */
export type WaitingSource = 'live' | 'backfill';

/**
 * When the job each of these locations' queues takes next of each kind was enqueued (BullMQ's
 * job `timestamp`, epoch ms), the earliest over the locations: how long the head of the line has
 * waited. Read: the wait list's taking end (BullMQ takes from its right) and the prioritized
 * set's lowest score, then those jobs' timestamps: two pipelined round trips per 500 locations (a
 * pipeline per location on Redis Cluster), at most 4 reads of O(1) or O(log n) each per location,
 * whatever its queue's length. A retried job goes back to the end of the line with its first
 * timestamp, so this is the age of each line's head, not always of its oldest job. Paused queues
 * (their `paused` list) are not read: a paused queue is a held location's.
 */
export async function nextWaitingSince(redis: RedisClient, prefix: string, locationIds: readonly string[]): Promise<Partial<Record<WaitingSource, number>>> {
  const since: Partial<Record<WaitingSource, number>> = {};
  for (let start = 0; start < locationIds.length; start += 500) {
    const ids = locationIds.slice(start, start + 500);
    const heads = await perLocation(redis, ids, (p, id) => {
      const q = bullKeys(prefix, id).toKey;
      p.lindex(q('wait'), -1).zrange(q('prioritized'), 0, 0);
    });
    const next = heads.map(([live, backfill], i) => ({
      id: ids[i] ?? '',
      jobs: { live: asString(live), backfill: Array.isArray(backfill) ? asString(backfill[0]) : undefined },
    }));
    const stamps = await perLocation(redis, next, (p, { id, jobs }) => {
      for (const jobId of [jobs.live, jobs.backfill]) if (jobId !== undefined) p.hget(bullKeys(prefix, id).job(jobId), 'timestamp');
    });
    next.forEach(({ jobs }, i) => {
      const replies = [...(stamps[i] ?? [])];
      for (const source of ['live', 'backfill'] as const) {
        if (jobs[source] === undefined) continue;
        const at = Number(replies.shift() ?? Number.NaN); // a job removed meanwhile: no timestamp
        if (Number.isFinite(at) && at < (since[source] ?? Infinity)) since[source] = at;
      }
    });
  }
  return since;
}

/**
 * The replies to `queue(p, item)`'s commands for each item (a location, or what names one): one
 * pipeline for all, or on Redis Cluster one per location (its keys share a slot).
 */
async function perLocation<T>(redis: RedisClient, items: readonly T[], queue: (p: ChainableCommander, item: T) => void): Promise<unknown[][]> {
  if (!mixesSlots(redis)) {
    return Promise.all(
      items.map(async (item) => {
        const p = redis.pipeline();
        queue(p, item);
        return p.length === 0 ? [] : values(await p.exec());
      }),
    );
  }
  const p = redis.pipeline();
  const spans = items.map((item) => {
    const begin = p.length;
    queue(p, item);
    return [begin, p.length] as const;
  });
  const replies = p.length === 0 ? [] : values(await p.exec());
  return spans.map(([begin, end]) => replies.slice(begin, end));
}

function values(results: [Error | null, unknown][] | null): unknown[] {
  return (results ?? []).map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

function asString(x: unknown): string | undefined {
  return typeof x === 'string' ? x : undefined;
}
