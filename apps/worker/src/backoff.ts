/**
 * How long to wait before the next attempt: exponential with full jitter (a random delay between
 * 0 and min(cap, base * 2^(attempt-1))), so a crowd of failed messages does not retry in step.
 * A `Retry-After` from HighLevel wins when it asks for longer.
 */
export interface BackoffOptions {
  /** Delay scale of the first retry, in ms. Default 1,000. */
  baseMs: number;
  /** Largest delay, in ms. Default 300,000 (5 min). */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1_000, capMs: 300_000 };

/**
 * @param attempt the attempt that just failed, from 1
 * @param random a number in [0, 1)
 * @param retryAfterMs what HighLevel asked for, if anything
 */
export function backoffDelay(attempt: number, random: () => number, retryAfterMs?: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.max(0, attempt - 1));
  const delay = Math.floor(random() * ceiling);
  return retryAfterMs !== undefined && retryAfterMs > delay ? retryAfterMs : delay;
}

/** `Retry-After` as ms from `nowMs`: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, at - nowMs);
}

/** HighLevel failures in a row at a location (see `apiHealth`) from which it counts as down. */
export const OUTAGE_THRESHOLD = 5;
const OUTAGE_FIRST_WAIT_MS = 1_000;
const OUTAGE_MAX_WAIT_MS = 30_000;

/**
 * While HighLevel is down, a location's messages stop spending attempts: the location waits
 * (1 s, 2 s, 4 s … at most 30 s), then one request probes. Undefined below the threshold: the
 * failure is the message's attempt, retried with `backoffDelay`.
 * @param failures consecutive failures at the location, this one included
 */
export function outageWait(failures: number): number | undefined {
  if (failures < OUTAGE_THRESHOLD) return undefined;
  return Math.min(OUTAGE_MAX_WAIT_MS, OUTAGE_FIRST_WAIT_MS * 2 ** Math.min(failures - OUTAGE_THRESHOLD, 20));
}
