/**
 * Where one message is, from what the worker writes: the delivery ledger (HighLevel's messageId,
 * written before the job completes), the message's job in its location's queue (waiting, being
 * sent, waiting to go again, or finished), its dead-letter record (written before the job fails
 * for good) and its location's hold. Each is read through its owner (ledger.ts,
 * location/queues.ts, dead-letter.ts, location/holds.ts); `messageStatus` decides from the reads.
 */
import type { RedisClient } from './connection.ts';
import { DeadLetters, type DeadLetterRecord, type FailureClass } from './dead-letter.ts';
import { deadLetterId, keysFor, type Keys } from './keys.ts';
import { readLedgerEntry, type LedgerEntry } from './ledger.ts';
import type { LocationHold } from './location/holds.ts';
import { LocationReader } from './location/index.ts';
import { readQueuedJob, type QueuedJob } from './location/queues.ts';

/** HighLevel accepted it. */
export interface MessageDelivered {
  state: 'delivered';
  /** HighLevel's id of the message. */
  messageId: string;
  /** When HighLevel accepted it, epoch ms. */
  deliveredAt: number;
}

/** In its location's queue: neither delivered yet nor given up on. */
export interface MessagePending {
  state: 'pending';
  /**
   * `queued`: waiting for its turn (its location's budget, the messages before it, a worker);
   * `sending`: a worker has it now; `retrying`: waiting until `nextAttemptAt`, after a failed
   * attempt (or put off without spending one, while something it needs is not ready).
   */
  stage: 'queued' | 'sending' | 'retrying';
  /** Attempts that failed so far. */
  attempts: number;
  /** Attempts it may make before it is dead-lettered (GHL_MAX_ATTEMPTS when it was enqueued). */
  maxAttempts: number;
  /** `retrying`: when it goes again, epoch ms. */
  nextAttemptAt?: number;
  /** The last failure, once one happened. */
  lastError?: string;
  /** Its location is paused (until someone resumes it: `ingest resume`) or parked (until its daily budget resets). */
  hold?: LocationHold;
}

/** Failed for good: in the dead-letter queue (`ingest dlq`), not posted again unless redriven or sent again. */
export interface MessageDeadLettered {
  state: 'dead-lettered';
  /** Why: HighLevel's refusal, or the last failure after the last attempt. */
  reason: string;
  /** Absent when only the failed job is left (its record was purged), as for the fields below. */
  failureClass?: FailureClass;
  /** HighLevel's answer, when there was one. */
  httpStatus?: number;
  attempts: number;
  /** The last attempt, epoch ms. */
  deadLetteredAt?: number;
  /** The record's id (`<locationId>.<key>`) for `ingest dlq show`, `redrive` and `purge`. */
  recordId?: string;
}

/**
 * Nothing holds the message: never sent (or not yet: a send still in progress), or delivered
 * longer ago than GHL_LEDGER_TTL_DAYS, or its dead letter purged and its failed job removed.
 */
export interface MessageUnknown {
  state: 'unknown';
}

export type MessageStatus = MessageDelivered | MessagePending | MessageDeadLettered | MessageUnknown;

/** What the owners hold of one message (and its location's hold). */
export interface MessageReads {
  ledger?: LedgerEntry | undefined;
  job?: QueuedJob | undefined;
  deadLetter?: DeadLetterRecord | undefined;
  hold?: LocationHold | undefined;
}

/**
 * The status the reads add up to. The reads are not one snapshot: each rule below holds whichever
 * way a message moved between them (a job completes only after its ledger entry is written, and
 * fails for good only after its record is).
 */
export function messageStatus(reads: MessageReads): MessageStatus {
  const { ledger, job, deadLetter, hold } = reads;
  // The ledger is the truth about delivery: a job of it still queued is skipped when taken.
  if (ledger !== undefined) return { state: 'delivered', messageId: ledger.messageId, deliveredAt: ledger.at };
  if (job?.state === 'completed') {
    // Its entry expired (or Redis lost it) while BullMQ still keeps the job: the job's result says.
    const messageId = messageIdOf(job.returnValue);
    if (messageId !== undefined && job.finishedOn !== undefined) return { state: 'delivered', messageId, deliveredAt: job.finishedOn };
  }
  // A record beside a job that waits is out of date (a worker that wrote it died before failing
  // the job, which goes again): the job wins. Beside an active job, it is being failed now.
  if (deadLetter !== undefined && job?.state !== 'waiting' && job?.state !== 'delayed') return fromRecord(deadLetter);
  if (job === undefined) return { state: 'unknown' };
  switch (job.state) {
    case 'completed':
      return { state: 'unknown' };
    case 'failed':
      return {
        state: 'dead-lettered',
        reason: job.failedReason ?? 'failed for good',
        attempts: job.attemptsMade,
        ...(job.finishedOn === undefined ? {} : { deadLetteredAt: job.finishedOn }),
      };
    case 'waiting':
    case 'active':
    case 'delayed':
      return {
        state: 'pending',
        stage: STAGES[job.state],
        attempts: job.attemptsMade,
        maxAttempts: job.attempts,
        ...(job.dueAt === undefined ? {} : { nextAttemptAt: job.dueAt }),
        ...(job.failedReason === undefined ? {} : { lastError: job.failedReason }),
        ...(hold === undefined ? {} : { hold }),
      };
  }
}

const STAGES = { waiting: 'queued', active: 'sending', delayed: 'retrying' } as const satisfies Record<string, MessagePending['stage']>;

function fromRecord(record: DeadLetterRecord): MessageDeadLettered {
  return {
    state: 'dead-lettered',
    reason: record.reason,
    failureClass: record.class,
    ...(record.httpStatus === undefined ? {} : { httpStatus: record.httpStatus }),
    attempts: record.attempts,
    deadLetteredAt: record.lastAttemptAt,
    recordId: record.id,
  };
}

/** The worker's result of a delivery (`{ messageId }`), if `value` is one. */
function messageIdOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !('messageId' in value)) return undefined;
  const id = value.messageId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/** Reads messages' status; a producer's (`Producer.status`). Shares the connection given, which its owner closes. */
export class MessageStatusReader {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #keys: Keys;
  readonly #deadLetters: DeadLetters;
  readonly #locations: LocationReader;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#keys = keysFor(prefix);
    this.#deadLetters = new DeadLetters(redis, prefix);
    this.#locations = new LocationReader(redis, { prefix });
  }

  /** The status of the message `key` (its message key, as `send` answered it) of the location. */
  async read(locationId: string, key: string): Promise<MessageStatus> {
    const [ledger, job, deadLetter, hold] = await Promise.all([
      readLedgerEntry(this.#redis, this.#keys, locationId, key),
      readQueuedJob(this.#redis, this.#prefix, locationId, key),
      this.#deadLetters.get(deadLetterId(locationId, key)),
      this.#locations.hold(locationId),
    ]);
    return messageStatus({ ledger, job, deadLetter, hold });
  }

  async close(): Promise<void> {
    await this.#deadLetters.close();
  }
}
