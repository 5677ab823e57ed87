/**
 * A location's jobs as the dispatcher moves them: the worker's one room for BullMQ's own calls
 * (moveToActive, the moves that also take the next job, the stalled-job check, lock renewal) and
 * for what it reads of BullMQ's layout (through `bullKeys` and `delayedDueAt`, the queue package's
 * readers of BullMQ's keys). No BullMQ Worker runs: the dispatcher takes each job with BullMQ's
 * scripts on the process's one shared connection, as BullMQ's worker would.
 */
import { bullKeys, delayedDueAt, locationOfQueue, type RedisClient } from '@ghl-ingest/queue';
import { Job, type Queue } from 'bullmq';

/** What a move that may take the next job gave: a job, `empty` (none left to take), or undefined (not asked). */
export type Next = Job | 'empty' | undefined;

/** A location's backlog when a turn ends: whether any job waits, whether another process has some active, and the next retry. */
export interface Backlog {
  waiting: number;
  active: number;
  /** When the earliest retry (a delayed job) is due, epoch ms. */
  nextRetryAt: number | undefined;
}

export class LocationJobs {
  readonly queue: Queue;
  readonly #workerName: string;

  constructor(queue: Queue, workerName: string) {
    this.queue = queue;
    this.#workerName = workerName;
  }

  /** Takes the location's next job (live ones first: BullMQ's wait list before its prioritized set). */
  async fetch(token: string): Promise<Next> {
    return this.#next(await this.queue.getBackend().moveToActive(token, this.#workerName));
  }

  /** Completes `job`, taking the next one with it when `fetchNext`. */
  async complete(job: Job, result: unknown, token: string, fetchNext: boolean): Promise<Next> {
    const next = this.#next(await job.moveToCompleted(result, token, fetchNext));
    return fetchNext ? next : undefined;
  }

  /** Fails `job` (BullMQ retries it with its backoff while attempts remain), taking the next one when `fetchNext`. */
  async fail(job: Job, error: Error, token: string, fetchNext: boolean): Promise<Next> {
    const next = this.#next(await job.moveToFailed(error, token, fetchNext));
    return fetchNext ? next : undefined;
  }

  /** Puts `job` back to be taken first, costing no attempt (the location waits, or the worker stops). */
  async putBack(job: Job, token: string): Promise<void> {
    await job.moveToWait(token);
  }

  /** Puts `job` off until `at` (epoch ms), costing no attempt. */
  async putOff(job: Job, at: number, token: string): Promise<void> {
    await job.moveToDelayed(at, token);
  }

  /** Extends the locks of jobs active here; returns the ids whose lock was no longer theirs. */
  async extendLocks(ids: string[], tokens: string[], lockMs: number): Promise<string[]> {
    return (await this.queue.getBackend().extendLocks(ids, tokens, lockMs)).map(String);
  }

  /** BullMQ's stalled-job check: jobs of a process that died go back to wait (or fail, past their stalls). Returns their ids. */
  async checkStalled(): Promise<string[]> {
    const stalled = (await this.queue.getBackend().moveStalledJobsToWait()) as unknown;
    return Array.isArray(stalled) ? stalled.map(String) : [];
  }

  /** The job `id`, if it failed for good (for a record of what left without one). */
  async failedJob(id: string): Promise<Job | undefined> {
    const job = await Job.fromId(this.queue, id);
    return job !== undefined && (await job.getState()) === 'failed' ? job : undefined;
  }

  /**
   * What is left when a turn ends, in one round trip (the location's slot): four reads sent
   * together, not an ioredis pipeline (which copies a method per script defined on the connection).
   */
  async backlog(connection: RedisClient): Promise<Backlog> {
    const key = bullKeys(this.queue.opts.prefix ?? 'bull', locationOfQueue(this.queue.name) ?? this.queue.name).toKey;
    const [waiting, prioritized, active, delayed] = await Promise.all([
      connection.llen(key('wait')),
      connection.zcard(key('prioritized')),
      connection.llen(key('active')),
      connection.zrange(key('delayed'), 0, 0, 'WITHSCORES'),
    ]);
    return { waiting: waiting + prioritized, active, nextRetryAt: delayed[1] === undefined ? undefined : delayedDueAt(delayed[1]) };
  }

  #next(raw: unknown): Next {
    if (!Array.isArray(raw)) return undefined;
    const [jobData, jobId] = raw as [Record<string, string> | null | undefined, string | undefined];
    if (jobData === null || jobData === undefined || jobId === undefined) return 'empty';
    return Job.fromJSON(this.queue, jobData as never, jobId);
  }
}

/** A job's BullMQ lock, `<prefix>:<queue>:<id>:lock` (in the location's hash slot), with the token it is held by. */
export function jobLock(job: Job): { key: string; token: string } | undefined {
  return job.token === undefined ? undefined : { key: `${job.prefix}:${job.queueName}:${String(job.id)}:lock`, token: job.token };
}
