/**
 * How the processor tells the dispatcher what to do with a job that was not delivered: typed
 * signals, recognised by class (and by `name` across a process boundary), never by the text of a
 * message. The location's (LocationWait, LocationPaused) and the job's (LockLost, RetryLater,
 * WorkerStopping) cost no attempt; RetryableDeliveryError spends one, and DeadLettered ends it.
 */
import { IngestError } from '@ghl-ingest/queue';
import { UnrecoverableError } from 'bullmq';

/** The whole location waits `waitMs` (its budget, a 429, HighLevel down, the daily cap): the job goes back first in line. */
export class LocationWait extends Error {
  override name = 'LocationWait';
  readonly waitMs: number;

  constructor(waitMs: number) {
    super(`location waits ${Math.ceil(waitMs)} ms`);
    this.waitMs = waitMs;
  }
}

/**
 * A backfill job's slot is further ahead than a loop holds one for (the location's pace, or its
 * window full, not a block): the job goes back. While another loop of the lane serves the
 * location its turn goes on, so that live messages are still taken at once; the last loop's makes
 * the location wait, as a LocationWait.
 */
export class SlotFarAhead extends LocationWait {
  override name = 'SlotFarAhead';
}

/** The location was paused (credentials): the job goes back, into the paused queue. */
export class LocationPaused extends Error {
  override name = 'LocationPaused';
}

/**
 * The job's lock is no longer this worker's (its renewal failed, or Redis said so when a slot was
 * taken): another worker may hold the job, so this one posts nothing and leaves the job alone.
 */
export class LockLost extends Error {
  override name = 'LockLost';
}

/**
 * This message (not its location) goes again after `delayMs`, costing no attempt: a lookup it
 * needs before posting again must wait for the location's lookup budget, or HighLevel did not
 * answer it. Its location's other messages go on meanwhile.
 */
export class RetryLater extends Error {
  override name = 'RetryLater';
  readonly delayMs: number;

  constructor(delayMs: number, reason: string) {
    super(reason);
    this.delayMs = delayMs;
  }
}

/** This worker is stopping: the job goes back for another worker, its slot back to the location. */
export class WorkerStopping extends Error {
  override name = 'WorkerStopping';
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

/**
 * The message was dead-lettered (the record is written): the job fails for good. The one
 * UnrecoverableError the product throws.
 */
export class DeadLettered extends UnrecoverableError {
  override name = 'UnrecoverableError';
  readonly deadLettered = true;
}

export function isDeadLettered(error: unknown): boolean {
  return error instanceof DeadLettered || (typeof error === 'object' && error !== null && (error as { deadLettered?: unknown }).deadLettered === true);
}
