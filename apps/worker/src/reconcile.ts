/**
 * Looking before posting again. HighLevel has no idempotency key, but it lets us read a
 * conversation's messages back, each with its `altId`. When a post's outcome is unknown (it may
 * have reached HighLevel and no answer came back), the worker reads the conversation before the
 * next post: found, the delivery is recorded with HighLevel's message id and nothing is posted;
 * absent, it posts; undecided (HighLevel itself cannot tell: no conversation to read, no altId in
 * its answer, no read scope, or a read it refuses), it posts as it would have without looking, and
 * says why. A lookup that must wait (the location's lookup budget spent, HighLevel not answering
 * the read) makes the message wait: it is never posted blind for want of a lookup.
 */
import { z } from 'zod';
import type { Outcome } from './classify.ts';

/**
 * Whether HighLevel may hold the message although no answer said so: the request was written
 * and then timed out or its connection reset (`sent`), or a gateway answered 502 or 504 (it may
 * have passed the request on), or 500, or a 2xx without a message id. A refusal before sending
 * (connection refused, DNS), a 4xx (429 included) or a 503 say it was not taken.
 */
export function mayHaveArrived(outcome: Outcome): boolean {
  if (outcome.kind === 'network') return outcome.sent;
  const { status } = outcome;
  if (status >= 200 && status < 300) return true; // only reaches here without a messageId: a suspect answer
  return status === 500 || status === 502 || status === 504;
}

/** What a lookup decided. */
export type LookupResult =
  | { kind: 'found'; messageId: string }
  | { kind: 'absent' }
  | { kind: 'undecided'; reason: 'no-conversation' | 'no-altid' | 'no-read-scope' | 'error' | 'too-deep'; detail: string };

/** One page of `GET /conversations/{id}/messages` (`{ messages: { lastMessageId, nextPage, messages } }`), as far as a lookup needs it. */
export const messagesPageSchema = z
  .object({
    messages: z.object({
      lastMessageId: z.string().optional(),
      nextPage: z.boolean().default(false),
      messages: z.array(z.looseObject({ id: z.string(), altId: z.string().optional(), dateAdded: z.string().optional() })),
    }),
  })
  .transform((r) => r.messages);
export type MessagesPage = z.infer<typeof messagesPageSchema>;

/**
 * Decides from pages read newest first: found when a message carries the altId; absent when the
 * pages reach back past `since` (the first time the message may have been sent) without it, or
 * the conversation ends; undecided when no message in them carries an altId at all (HighLevel
 * left the field out), or the pages allowed run out first.
 */
export function decide(pages: MessagesPage[], altId: string, since: number, complete: boolean): LookupResult {
  let sawAltId = false;
  for (const page of pages) {
    for (const m of page.messages) {
      if (m.altId !== undefined) sawAltId = true;
      if (m.altId === altId) return { kind: 'found', messageId: m.id };
      const at = m.dateAdded === undefined ? Number.NaN : Date.parse(m.dateAdded);
      if (sawAltId && at < since) return { kind: 'absent' };
    }
  }
  const any = pages.some((p) => p.messages.length > 0);
  if (any && !sawAltId) return { kind: 'undecided', reason: 'no-altid', detail: 'HighLevel returned the messages without altId' };
  if (complete) return { kind: 'absent' };
  return { kind: 'undecided', reason: 'too-deep', detail: `not found in the ${pages.length} page(s) a lookup may read` };
}

/**
 * The share of a location's posts whose outcome was unknown (reconcile sizes its lookup budget
 * from it: `lookupsPerMinute`), as this process sees them: counts that halve every `halfLifeMs`
 * (default 5 min), so a burst of resets raises it within a minute and it falls back once they
 * stop. Bounded: past `maxLocations` the location seen longest ago is forgotten.
 */
export class UnknownShare {
  readonly #counts = new Map<string, { posts: number; unknown: number; at: number }>();
  readonly #halfLifeMs: number;
  readonly #max: number;

  constructor(options: { halfLifeMs?: number; maxLocations?: number } = {}) {
    this.#halfLifeMs = options.halfLifeMs ?? 300_000;
    this.#max = options.maxLocations ?? 10_000;
  }

  /** One post's outcome: `unknown` when it may have reached HighLevel without an answer saying so. */
  record(locationId: string, unknown: boolean, now: number): void {
    const c = this.#decayed(locationId, now);
    this.#counts.delete(locationId);
    this.#counts.set(locationId, { posts: c.posts + 1, unknown: c.unknown + (unknown ? 1 : 0), at: now });
    if (this.#counts.size > this.#max) this.#counts.delete(this.#counts.keys().next().value as string);
  }

  /** Unknown outcomes per post lately, 0 when none was seen. */
  share(locationId: string, now: number): number {
    const c = this.#decayed(locationId, now);
    return c.posts === 0 ? 0 : c.unknown / c.posts;
  }

  #decayed(locationId: string, now: number): { posts: number; unknown: number } {
    const c = this.#counts.get(locationId);
    if (c === undefined) return { posts: 0, unknown: 0 };
    const f = 0.5 ** (Math.max(0, now - c.at) / this.#halfLifeMs);
    return { posts: c.posts * f, unknown: c.unknown * f };
  }
}
