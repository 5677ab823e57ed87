import { describe, expect, it } from 'vitest';
import type { DeadLetterRecord } from './dead-letter.ts';
import type { QueuedJob } from './location/queues.ts';
import { messageStatus, type MessageReads, type MessageStatus } from './message-status.ts';

const job = (state: QueuedJob['state'], more: Partial<QueuedJob> = {}): QueuedJob => ({
  state,
  attemptsMade: 0,
  attempts: 10,
  dueAt: undefined,
  failedReason: undefined,
  returnValue: null,
  finishedOn: undefined,
  ...more,
});

const record: DeadLetterRecord = {
  v: 1,
  id: 'locA.k-m1',
  locationId: 'locA',
  key: 'k-m1',
  job: undefined,
  class: 'permanent',
  reason: 'HighLevel refused the message (422)',
  httpStatus: 422,
  attempts: 1,
  firstAttemptAt: 1_000,
  lastAttemptAt: 2_000,
  worker: 'host:1',
};

const paused = { state: 'paused', reason: 'no token for the location', since: 5 } as const;
const deadLettered: MessageStatus = {
  state: 'dead-lettered',
  reason: record.reason,
  failureClass: 'permanent',
  httpStatus: 422,
  attempts: 1,
  deadLetteredAt: 2_000,
  recordId: 'locA.k-m1',
};

describe('messageStatus: what the reads add up to', () => {
  it.each<[string, MessageReads, MessageStatus]>([
    ['nothing anywhere', {}, { state: 'unknown' }],
    ['a ledger entry', { ledger: { messageId: 'hl-1', at: 7 } }, { state: 'delivered', messageId: 'hl-1', deliveredAt: 7 }],
    [
      'a ledger entry beside a job still waiting (skipped when taken)',
      { ledger: { messageId: 'hl-1', at: 7 }, job: job('waiting') },
      { state: 'delivered', messageId: 'hl-1', deliveredAt: 7 },
    ],
    [
      'a completed job whose entry expired',
      { job: job('completed', { returnValue: { messageId: 'hl-2' }, finishedOn: 9 }) },
      { state: 'delivered', messageId: 'hl-2', deliveredAt: 9 },
    ],
    ['a completed job without a messageId', { job: job('completed', { returnValue: { skipped: true }, finishedOn: 9 }) }, { state: 'unknown' }],
    ['a job waiting', { job: job('waiting') }, { state: 'pending', stage: 'queued', attempts: 0, maxAttempts: 10 }],
    [
      'a job waiting in a paused location',
      { job: job('waiting'), hold: paused },
      { state: 'pending', stage: 'queued', attempts: 0, maxAttempts: 10, hold: paused },
    ],
    ['a job being sent', { job: job('active') }, { state: 'pending', stage: 'sending', attempts: 0, maxAttempts: 10 }],
    [
      'a job waiting to retry',
      { job: job('delayed', { attemptsMade: 2, dueAt: 50, failedReason: 'HighLevel answered 500' }) },
      { state: 'pending', stage: 'retrying', attempts: 2, maxAttempts: 10, nextAttemptAt: 50, lastError: 'HighLevel answered 500' },
    ],
    ['a dead-letter record and the failed job', { deadLetter: record, job: job('failed', { attemptsMade: 1 }) }, deadLettered],
    ['a dead-letter record, the job being failed now', { deadLetter: record, job: job('active') }, deadLettered],
    ['a dead-letter record, the job removed', { deadLetter: record }, deadLettered],
    [
      'a dead-letter record beside a job that goes again (its worker died before failing it)',
      { deadLetter: record, job: job('waiting', { attemptsMade: 1 }) },
      { state: 'pending', stage: 'queued', attempts: 1, maxAttempts: 10 },
    ],
    [
      'a failed job whose record was purged',
      { job: job('failed', { attemptsMade: 10, failedReason: 'HighLevel answered 503 (after 10 attempts)', finishedOn: 3 }) },
      { state: 'dead-lettered', reason: 'HighLevel answered 503 (after 10 attempts)', attempts: 10, deadLetteredAt: 3 },
    ],
  ])('%s', (_what, reads, expected) => {
    expect(messageStatus(reads)).toEqual(expected);
  });
});
