/**
 * Dead-letter records: a BullMQ queue of its own that no worker consumes, one job per message
 * that failed for good, with id `<locationId>.<key>` so writing it twice is a no-op. The worker
 * writes the record before it fails the original job, so a failed message is always in one place
 * or the other; `dlq` commands read, export, redrive and purge them.
 */
import { Queue } from 'bullmq';
import type { RedisClient } from './connection.ts';
import type { JobData } from '@ghl-ingest/schema';
import { mixesSlots } from './connection.ts';
import { deadLetterId, deadLetterQueueName } from './keys.ts';

export const FAILURE_CLASSES = ['permanent', 'suspect', 'transient', 'invalid-job', 'stalled'] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

export const API_ERROR_MAX_BYTES = 2048;

export interface DeadLetterRecord {
  v: 1;
  /** `<locationId>.<key>`. */
  id: string;
  locationId: string;
  key: string;
  /** The job as enqueued, when it still parses (then it is the import record's source). */
  job: JobData | undefined;
  /** The raw job data when it no longer parses. */
  raw?: unknown;
  class: FailureClass;
  reason: string;
  httpStatus?: number;
  /** HighLevel's error body, truncated to 2 KB. */
  apiError?: string;
  attempts: number;
  /** Epoch ms. */
  firstAttemptAt: number;
  lastAttemptAt: number;
  /** Which worker process: `<host>:<pid>`. */
  worker: string;
}

export class DeadLetters {
  readonly queue: Queue<DeadLetterRecord>;
  #connection: RedisClient;

  constructor(connection: RedisClient, prefix: string) {
    this.#connection = connection;
    this.queue = new Queue<DeadLetterRecord>(deadLetterQueueName(!mixesSlots(connection)), { connection, prefix });
  }

  /** Writes the record unless one exists for the message. Returns whether it wrote. */
  async write(record: Omit<DeadLetterRecord, 'v' | 'id'>): Promise<boolean> {
    const id = deadLetterId(record.locationId, record.key);
    const full: DeadLetterRecord = { v: 1, id, ...record };
    if (full.apiError !== undefined) full.apiError = truncateUtf8(full.apiError, API_ERROR_MAX_BYTES);
    const job = await this.queue.add(record.class, full, { jobId: id, removeOnComplete: false, removeOnFail: false });
    return job.data.lastAttemptAt === full.lastAttemptAt && job.data.worker === full.worker;
  }

  /** Every record, oldest first (tests and the demo's report; `ingest dlq` pages through them). */
  async all(): Promise<DeadLetterRecord[]> {
    return (await this.queue.getJobs(['wait'], 0, -1, true)).map((j) => j.data);
  }

  /**
   * Removes the records of these messages (`<locationId>.<key>`) that exist, as their messages are
   * queued again or found delivered; returns how many. Costs one LLEN when the DLQ is empty.
   */
  async drop(ids: readonly string[]): Promise<number> {
    if (ids.length === 0 || (await this.queue.getWaitingCount()) === 0) return 0;
    const exists = await Promise.all(ids.map((id) => this.#connection.exists(this.queue.toKey(id))));
    const present = [...new Set(ids.filter((_, i) => exists[i] === 1))];
    const removed = await Promise.all(present.map((id) => this.queue.remove(id)));
    return removed.filter((r) => r === 1).length;
  }

  async get(id: string): Promise<DeadLetterRecord | undefined> {
    const job = await this.queue.getJob(id);
    return job?.data;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  // Cut on a character boundary, leaving room for the marker.
  let cut = bytes.subarray(0, maxBytes - 3).toString('utf8');
  if (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
  return `${cut}…`;
}
