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
import type { LedgerEntry } from '@ghl-ingest/queue';
import type { JobData } from '@ghl-ingest/schema';
import type { Job } from 'bullmq';
import { z } from 'zod';
import type { Outcome } from './classify.ts';
import type { HighLevelClient, ReadResult } from './http-client.ts';
import { LocationWait, RetryLater } from './signals.ts';

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

/** How a lookup's reads take and give back slots of the location's budget (the delivery's own). */
export interface LookupRequests {
  /** A slot for one more read; throws the delivery's signals (LocationWait, LockLost) as a post's would. */
  slot(): Promise<string>;
  /** Passes a slot's gate right before its read is sent (it counts from then). */
  send(slot: string): Promise<void>;
  /** Gives back a slot no read used. */
  release(slot: string): void;
  /** A read's answer (or failure), counted like a post's. */
  answered(slot: string, result: ReadResult): void;
  /** HighLevel refused a read with 429: the location waits; how long (ms). */
  refuse(slot: string): number;
  /** The message was found: its ledger entry, before the job completes. */
  recordDelivered(entry: LedgerEntry): Promise<void>;
}

/** A lookup's log lines: object first, a short constant message second. */
export interface LookupLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ReconcilerOptions {
  client: Pick<HighLevelClient, 'get'>;
  /** Pages of a conversation a lookup reads at most. */
  pages: number;
  /** The location's lookups a minute, from the share of its posts whose outcome was unknown lately. */
  perMinute: (locationId: string, unknownShare: number) => number;
  /** The lookups every process shares (a location's per minute), and their results, counted in Redis. */
  state: { takeLookup(locationId: string, perMinute: number): Promise<boolean>; countLookup(locationId: string, result: LookupResult['kind']): Promise<void> };
  now: () => number;
  /** Told of a message waiting, or found delivered, by a lookup (metrics). */
  emit: (outcome: 'waiting' | 'delivered', data: JobData) => void;
  onLookup?: ((result: LookupResult) => void) | undefined;
  onRequest?: ((kind: 'lookup') => void) | undefined;
}

/**
 * The lookup before posting again, and what it remembers between messages: each location's share
 * of unknown outcomes (its lookup budget), the reads HighLevel left unanswered in a row (how long
 * the next lookup waits), and the conversation of each contact that answers named (a lookup then
 * needs no search).
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #unknown = new UnknownShare();
  readonly #lookupFailures = new Map<string, number>();
  readonly #conversations = new Map<string, string>();

  constructor(options: ReconcilerOptions) {
    this.#o = options;
  }

  get pages(): number {
    return this.#o.pages;
  }

  /** One post's outcome: `unknown` when it may have reached HighLevel without an answer saying so. */
  recordPost(locationId: string, unknown: boolean): void {
    this.#unknown.record(locationId, unknown, this.#o.now());
  }

  /** A contact's conversation, from HighLevel's answers (one per contact). Bounded: the oldest go first. */
  rememberConversation(locationId: string, contactId: string, conversationId: string): void {
    const key = conversationKey(locationId, contactId);
    this.#conversations.delete(key);
    this.#conversations.set(key, conversationId);
    if (this.#conversations.size > 20_000) this.#conversations.delete(this.#conversations.keys().next().value as string);
  }

  /**
   * Reads the message's conversation back, each read on a slot of the location's
   * budget like any request (the first on the slot taken for the post), within the location's
   * lookups per minute. Found: the delivery is recorded with HighLevel's message id, in the same
   * call that settles the last read, and nothing is posted. Otherwise the caller posts; `slot` is
   * handed back when no read used it.
   */
  async lookUp(
    job: Job,
    data: JobData,
    token: string,
    firstSlot: string,
    requests: LookupRequests,
    log: LookupLog,
  ): Promise<{ kind: 'found'; result: { messageId: string } } | { kind: 'post'; slot: string | undefined }> {
    const reconcile = this.#o;
    const altId = data.body.altId;
    const undecided = async (reason: Extract<LookupResult, { kind: 'undecided' }>['reason'], detail: string, slot: string | undefined) => {
      await this.#lookedUp(data, { kind: 'undecided', reason, detail }, log);
      return { kind: 'post' as const, slot };
    };
    if (altId === undefined) return undecided('no-altid', 'the message has no altId (enqueued before every message got one)', firstSlot);
    const perMinute = reconcile.perMinute(data.locationId, this.#unknown.share(data.locationId, this.#o.now()));
    if (!(await this.#o.state.takeLookup(data.locationId, perMinute))) {
      // Never posted blind for want of our own budget: the message waits for the next minute's.
      requests.release(firstSlot);
      const waitMs = 60_000 - (Date.now() % 60_000) + Math.floor(Math.random() * 1_000);
      log.info({ key: data.key, perMinute, waitMs }, 'lookup budget spent: message waits for the next minute');
      this.#o.emit('waiting', data);
      throw new RetryLater(waitMs, `the location's ${perMinute} lookups of this minute are spent`);
    }
    // Since when HighLevel may hold it: its own date (history), else its first unknown post; a minute's slack for clocks.
    const since =
      (data.body.date === undefined
        ? (data.unknownSince ?? job.processedOn ?? job.timestamp)
        : Math.min(Date.parse(data.body.date), data.unknownSince ?? Date.now())) - 60_000;
    let slot: string | undefined = firstSlot;
    const read = async (path: string, query: Record<string, string | undefined>, route?: string): Promise<{ result: ReadResult; slot: string }> => {
      // A lookup's own key is never in the ledger: the slot is all it can be.
      const taken = slot ?? (await requests.slot());
      slot = undefined;
      await requests.send(taken);
      this.#o.onRequest?.('lookup');
      const result = await this.#o.client.get(token, path, query, route);
      return { result, slot: taken };
    };
    // A read's slot is settled like a post's; when it found the message, its ledger entry is written.
    const settle = async (s: string, result: ReadResult, delivered?: LedgerEntry) => {
      requests.answered(s, result);
      if (delivered !== undefined) await requests.recordDelivered(delivered);
    };
    const refused = async (s: string, result: ReadResult): Promise<{ kind: 'post'; slot: string | undefined } | undefined> => {
      if (result.kind === 'network' || (result.status >= 500 && result.status <= 599)) {
        // HighLevel could tell, but did not answer: the message waits and looks again (1 s doubling to 30 s).
        await settle(s, result);
        const failures = (this.#lookupFailures.get(data.locationId) ?? 0) + 1;
        this.#lookupFailures.set(data.locationId, failures);
        if (this.#lookupFailures.size > 1_000) this.#lookupFailures.delete(this.#lookupFailures.keys().next().value as string);
        const waitMs = Math.min(30_000, 1_000 * 2 ** (failures - 1));
        const why = result.kind === 'network' ? result.message : `HighLevel answered ${result.status}`;
        log.warn({ key: data.key, waitMs, reason: why }, 'lookup got no answer: message waits to look again');
        this.#o.emit('waiting', data);
        throw new RetryLater(waitMs, `the lookup got no answer: ${why}`);
      }
      this.#lookupFailures.delete(data.locationId);
      if (result.status === 429) {
        throw new LocationWait(requests.refuse(s));
      }
      if (result.status >= 200 && result.status < 300) return undefined;
      await settle(s, result);
      if (result.status === 401 || result.status === 403)
        return undecided('no-read-scope', `HighLevel refused the read (${result.status}): the token needs conversations/message.readonly`, undefined);
      if (result.status === 404) return undecided('no-conversation', 'HighLevel does not know the conversation', undefined);
      return undecided('error', `HighLevel answered the lookup ${result.status}`, undefined);
    };

    // The conversation: the message's own, else its contact's as a recent answer named it, else a search.
    let conversationId =
      data.body.conversationId ??
      (data.body.contactId === undefined ? undefined : this.#conversations.get(conversationKey(data.locationId, data.body.contactId)));
    if (conversationId === undefined) {
      if (data.body.contactId === undefined) return undecided('no-conversation', 'the message names neither a conversation nor a contact', slot);
      const found = await read('conversations/search', { locationId: data.locationId, contactId: data.body.contactId });
      const stop = await refused(found.slot, found.result);
      if (stop !== undefined) return stop;
      await settle(found.slot, found.result);
      conversationId = conversationOf(found.result);
      if (conversationId === undefined) return undecided('no-conversation', `no conversation found for contact ${data.body.contactId}`, undefined);
    }
    const pages: MessagesPage[] = [];
    let lastMessageId: string | undefined;
    for (let n = 0; n < reconcile.pages; n += 1) {
      const got = await read(
        `conversations/${encodeURIComponent(conversationId)}/messages`,
        { limit: '100', ...(lastMessageId === undefined ? {} : { lastMessageId }) },
        'conversations/{conversationId}/messages',
      );
      const stop = await refused(got.slot, got.result);
      if (stop !== undefined) return stop;
      const page = messagesPageSchema.safeParse((got.result as { json: unknown }).json);
      if (!page.success) {
        await settle(got.slot, got.result);
        return undecided('error', 'the messages page had an unexpected shape', undefined);
      }
      pages.push(page.data);
      const verdict = decide(pages, altId, since, !page.data.nextPage);
      const last = n === reconcile.pages - 1;
      if (verdict.kind === 'found') {
        await settle(got.slot, got.result, { messageId: verdict.messageId, at: this.#o.now() });
        await this.#lookedUp(data, verdict, log);
        log.info({ key: data.key, messageId: verdict.messageId }, 'delivered (found at HighLevel after an unknown outcome; not posted again)');
        this.#o.emit('delivered', data);
        return { kind: 'found', result: { messageId: verdict.messageId } };
      }
      await settle(got.slot, got.result);
      if (verdict.kind === 'absent' || verdict.reason !== 'too-deep' || last || page.data.lastMessageId === undefined) {
        await this.#lookedUp(data, verdict, log);
        return { kind: 'post', slot: undefined };
      }
      lastMessageId = page.data.lastMessageId;
    }
    return undecided('too-deep', `not found in ${reconcile.pages} page(s)`, undefined);
  }

  async #lookedUp(data: JobData, result: LookupResult, log: LookupLog): Promise<void> {
    await this.#o.state.countLookup(data.locationId, result.kind);
    this.#o.onLookup?.(result);
    if (result.kind === 'undecided') log.warn({ key: data.key, reason: result.reason, detail: result.detail }, 'lookup undecided: posting as without one');
    else if (result.kind === 'absent') log.info({ key: data.key }, 'lookup: not at HighLevel; posting');
  }
}

/** A contact's key in the remembered conversations (a location's contact ids are its own). */
function conversationKey(locationId: string, contactId: string): string {
  return `${locationId}\n${contactId}`;
}

/** The id of the conversation a search found, if any. */
function conversationOf(result: ReadResult): string | undefined {
  if (result.kind !== 'answer') return undefined;
  const list = (result.json as { conversations?: { id?: unknown }[] } | undefined)?.conversations;
  const id = Array.isArray(list) ? list[0]?.id : undefined;
  return typeof id === 'string' ? id : undefined;
}
