/**
 * When the notification sender sends, what an answer means, and how long it waits after a
 * failure: plain functions of the outbox's state and the webhook's answer (notify-sender.ts does
 * the I/O). Retries: network errors, 408, 429 and 5xx, with the queue's backoff (`backoffDelay`)
 * and the receiver's `Retry-After`; any other answer below 200 or from 300 up is final.
 */
import { backoffDelay, parseRetryAfter, type BackoffOptions } from './backoff.ts';

export interface NotifyPolicy {
  /** Events per POST at most. Default 100. */
  maxBatch: number;
  /** How long the oldest waiting event waits for others to join its POST (ms). Default 5,000. */
  batchWindowMs: number;
  /** Pause between POSTs while a backlog drains (ms): a receiver is never flooded. Default 1,000. */
  minIntervalMs: number;
  /** A POST's whole-request timeout (ms). Default 10,000; keep it under `leaseMs`. */
  timeoutMs: number;
  /** After a failed POST: full-jitter exponential backoff. Default base 1 s, cap 5 min. */
  backoff: BackoffOptions;
  /** The longest `Retry-After` honoured (ms). Default 3,600,000 (1 h). */
  maxRetryAfterMs: number;
  /** Events older than this are dropped unsent (ms). Default 86,400,000 (24 h). */
  maxAgeMs: number;
  /** The send lease: a sender that stops renewing it is replaced after this (ms). Default 15,000. */
  leaseMs: number;
  /** How often the outbox is looked at when there is nothing to wait for (ms). Default 1,000. */
  pollMs: number;
}

export const DEFAULT_NOTIFY_POLICY: NotifyPolicy = {
  maxBatch: 100,
  batchWindowMs: 5_000,
  minIntervalMs: 1_000,
  timeoutMs: 10_000,
  backoff: { baseMs: 1_000, capMs: 300_000 },
  maxRetryAfterMs: 3_600_000,
  maxAgeMs: 86_400_000,
  leaseMs: 15_000,
  pollMs: 1_000,
};

/** Whether the events waiting make a POST now: a full batch, or the oldest has waited its window. */
export function batchDue(count: number, oldestAgeMs: number, policy: NotifyPolicy): { send: true } | { send: false; waitMs: number } {
  if (count === 0) return { send: false, waitMs: policy.pollMs };
  if (count >= policy.maxBatch || oldestAgeMs >= policy.batchWindowMs) return { send: true };
  return { send: false, waitMs: policy.batchWindowMs - oldestAgeMs };
}

/** How long to sleep before the next look: `waitMs`, but often enough to renew the lease (a third of it). */
export function nextLookMs(waitMs: number, policy: NotifyPolicy): number {
  return Math.max(0, Math.min(waitMs, policy.leaseMs / 3));
}

/** What came back from one POST. */
export type WebhookOutcome = { kind: 'answer'; status: number; retryAfter?: string | undefined } | { kind: 'network'; code: string };

export type SendVerdict = { kind: 'sent' } | { kind: 'retry'; reason: string; retryAfterMs: number | undefined } | { kind: 'drop'; reason: string };

export function sendVerdict(outcome: WebhookOutcome, nowMs: number, policy: NotifyPolicy): SendVerdict {
  if (outcome.kind === 'network') return { kind: 'retry', reason: `network error ${outcome.code}`, retryAfterMs: undefined };
  const { status } = outcome;
  if (status >= 200 && status < 300) return { kind: 'sent' };
  if (status === 408 || status === 429 || status >= 500) {
    const asked = parseRetryAfter(outcome.retryAfter, nowMs);
    return { kind: 'retry', reason: `answered ${status}`, retryAfterMs: asked === undefined ? undefined : Math.min(asked, policy.maxRetryAfterMs) };
  }
  // A 3xx here is a redirect not followed (to another origin, or too many).
  return { kind: 'drop', reason: status >= 300 && status < 400 ? `answered ${status} (a redirect to another origin is not followed)` : `answered ${status}` };
}

/**
 * How long every sender waits before posting again.
 * @param attempt the failed POSTs in a row, this one included (from 1)
 */
export function retryDelay(attempt: number, retryAfterMs: number | undefined, policy: NotifyPolicy, random: () => number): number {
  return backoffDelay(attempt, random, retryAfterMs, policy.backoff);
}
