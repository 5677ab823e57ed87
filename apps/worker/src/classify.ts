/**
 * What an answer from HighLevel means for the message. One pure function; the table it
 * implements is in the README:
 *
 * | answer                                           | class        |
 * |--------------------------------------------------|--------------|
 * | 2xx with messageId                               | delivered    |
 * | 2xx without messageId                            | suspect      (retried at most 3 times) |
 * | 400, 403, 404, 422 and other 4xx                 | permanent    |
 * | 401                                              | credentials  (the location pauses) |
 * | 429                                              | rate-limited (not an attempt) |
 * | 408, 425, 502, 503, 504, timeouts, resets, DNS   | transient    |
 * | 500 and other 5xx                                | transient, at most 3 attempts |
 */
import { apiErrorMessage, inboundSuccessSchema } from '@ghl-ingest/schema';
import { parseRetryAfter } from './backoff.ts';

/** What came back from one POST. */
export type Outcome =
  | { kind: 'answer'; status: number; body: string; retryAfter?: string | undefined }
  /** No answer. `sent`: the whole request had been written first, so HighLevel may hold the message (see reconcile.ts). */
  | { kind: 'network'; code: string; message: string; sent: boolean };

export type Classification =
  | { class: 'delivered'; messageId: string; conversationId?: string | undefined }
  | { class: 'credentials'; reason: string }
  | { class: 'rate-limited'; reason: string; retryAfterMs: number | undefined }
  | { class: 'permanent'; reason: string }
  | { class: 'suspect'; reason: string; maxAttempts: number }
  | { class: 'transient'; reason: string; retryAfterMs: number | undefined; maxAttempts: number | undefined };

/** Attempts allowed for a 500 (HighLevel has answered 500 to client mistakes) and for a suspect 2xx. */
export const CAPPED_ATTEMPTS = 3;

const TRANSIENT_4XX = new Set([408, 425]);
const TRANSIENT_5XX = new Set([502, 503, 504]);

export function classify(outcome: Outcome, nowMs: number): Classification {
  if (outcome.kind === 'network') {
    return { class: 'transient', reason: `network error ${outcome.code}: ${outcome.message}`, retryAfterMs: undefined, maxAttempts: undefined };
  }
  const { status } = outcome;
  const body = parseJson(outcome.body);
  if (status >= 200 && status < 300) {
    const parsed = inboundSuccessSchema.safeParse(body);
    if (parsed.success) return { class: 'delivered', messageId: parsed.data.messageId, conversationId: parsed.data.conversationId };
    return { class: 'suspect', reason: `HighLevel answered ${status} without a messageId${describeBody(body)}`, maxAttempts: CAPPED_ATTEMPTS };
  }
  const retryAfterMs = parseRetryAfter(outcome.retryAfter, nowMs);
  const said = describeBody(body);
  if (status === 401) return { class: 'credentials', reason: `HighLevel rejected the location's token (401)${said}` };
  if (status === 429) return { class: 'rate-limited', reason: `HighLevel answered 429${said}`, retryAfterMs };
  if (TRANSIENT_4XX.has(status) || TRANSIENT_5XX.has(status)) {
    return { class: 'transient', reason: `HighLevel answered ${status}${said}`, retryAfterMs, maxAttempts: undefined };
  }
  if (status >= 500) {
    return { class: 'transient', reason: `HighLevel answered ${status}${said}`, retryAfterMs, maxAttempts: CAPPED_ATTEMPTS };
  }
  return { class: 'permanent', reason: `HighLevel refused the message (${status})${said}` };
}

/**
 * Whether an outcome says HighLevel itself is failing (`down`: unreachable, timed out, 502/503/504)
 * or answering for itself (`up`: any answer below 500). A 500 says neither: HighLevel answers 500
 * to some malformed messages. Counted per location by the limiter to tell an outage from bad luck.
 */
export function apiHealth(outcome: Outcome): 'up' | 'down' | undefined {
  if (outcome.kind === 'network' || TRANSIENT_5XX.has(outcome.status)) return 'down';
  return outcome.status < 500 ? 'up' : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `: <the API's message>` when the (parsed) body carries one, for reasons people read. */
function describeBody(body: unknown): string {
  const message = apiErrorMessage(body);
  if (message === undefined) return '';
  return `: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`;
}
