/**
 * A location's contact directory: which HighLevel contact a phone number or email address is, and
 * which conversation a contact has, remembered in Redis for every worker process and across
 * restarts, so that a contact is found or created once (`POST /contacts/upsert`) however many
 * messages name it. Owns the keys `contacts:{id}` (HASH: `p:<E.164>` / `e:<email>` -> contactId,
 * `c:<contactId>` -> conversationId) and `contacts:{id}:pending:<identity>` (the single-flight
 * claim of a contact being resolved, with an expiry). How many were found and created is counted
 * with the location's other outcomes (outcomes.ts).
 */
import type { RedisClient } from '../connection.ts';

export interface ContactKeys {
  directory: string;
  pending: (identity: string) => string;
}

export function contactKeys(prefix: string, locationId: string): ContactKeys {
  const base = `${prefix}:contacts:{${locationId}}`;
  return { directory: base, pending: (identity) => `${base}:pending:${identity}` };
}

export class ContactDirectory {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  /** The contact known under the first of `identities` that is known. */
  async find(locationId: string, identities: readonly string[]): Promise<string | undefined> {
    if (identities.length === 0) return undefined;
    const ids = await this.#redis.hmget(contactKeys(this.#prefix, locationId).directory, ...identities);
    return ids.find((id): id is string => id !== null && id !== '');
  }

  /**
   * Claims the resolution of `identity` for `ms`: true when this caller is to ask HighLevel,
   * false when another process is asking (its answer lands in the directory).
   */
  async claim(locationId: string, identity: string, token: string, ms: number): Promise<boolean> {
    return (await this.#redis.set(contactKeys(this.#prefix, locationId).pending(identity), token, 'PX', Math.max(1, Math.ceil(ms)), 'NX')) === 'OK';
  }

  /** Remembers the contact under every identity its record gave, and ends the claim. */
  async remember(locationId: string, identities: readonly string[], contactId: string): Promise<void> {
    const k = contactKeys(this.#prefix, locationId);
    const multi = this.#redis.multi();
    for (const identity of identities) multi.hset(k.directory, identity, contactId);
    for (const identity of identities) multi.del(k.pending(identity));
    await multi.exec();
  }

  /** Gives a claim up (the upsert failed): the next message asks again. */
  async unclaim(locationId: string, identities: readonly string[]): Promise<void> {
    const k = contactKeys(this.#prefix, locationId);
    await this.#redis.del(...identities.map((i) => k.pending(i)));
  }

  async conversationOf(locationId: string, contactId: string): Promise<string | undefined> {
    return (await this.#redis.hget(contactKeys(this.#prefix, locationId).directory, `c:${contactId}`)) ?? undefined;
  }

  async rememberConversation(locationId: string, contactId: string, conversationId: string): Promise<void> {
    await this.#redis.hset(contactKeys(this.#prefix, locationId).directory, `c:${contactId}`, conversationId);
  }
}
