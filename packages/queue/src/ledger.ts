/**
 * The delivery ledger: HighLevel has no idempotency key, so we keep our own record of what it
 * accepted (idempotency key → messageId). Checked before every post; written right after a
 * success, before the job completes. Entries expire after GHL_LEDGER_TTL_DAYS.
 */
import type { RedisClient } from './connection.ts';
import { keysFor, type Keys } from './keys.ts';

export interface LedgerEntry {
  messageId: string;
  /** Epoch ms when HighLevel accepted it. */
  at: number;
}

export class DeliveryLedger {
  #redis: RedisClient;
  #keys: Keys;
  #ttlMs: number;

  constructor(redis: RedisClient, prefix: string, ttlMs: number) {
    this.#redis = redis;
    this.#keys = keysFor(prefix);
    this.#ttlMs = ttlMs;
  }

  async get(locationId: string, key: string): Promise<LedgerEntry | undefined> {
    return readLedgerEntry(this.#redis, this.#keys, locationId, key);
  }

  async record(locationId: string, key: string, entry: LedgerEntry): Promise<void> {
    await this.#redis.set(this.#keys.ledger(locationId, key), formatLedgerEntry(entry), 'PX', this.#ttlMs);
  }

  /** Which of `keys` (all of one location) were delivered: for re-imports to skip them. */
  async delivered(locationId: string, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const values = await this.#redis.mget(keys.map((k) => this.#keys.ledger(locationId, k)));
    return new Set(keys.filter((_, i) => values[i] !== null));
  }
}

/** One message's entry, for readers that never write (`status`, `DeliveryLedger.get`). */
export async function readLedgerEntry(redis: RedisClient, keys: Pick<Keys, 'ledger'>, locationId: string, key: string): Promise<LedgerEntry | undefined> {
  const value = await redis.get(keys.ledger(locationId, key));
  return value === null ? undefined : parseLedgerEntry(value);
}

/** Stored as "<messageId> <at>": a third of the size of JSON, for millions of entries. */
export function formatLedgerEntry(entry: LedgerEntry): string {
  return `${entry.messageId} ${entry.at}`;
}

export function parseLedgerEntry(value: string): LedgerEntry {
  const [messageId = '', at = '0'] = value.split(' ');
  return { messageId, at: Number(at) };
}
