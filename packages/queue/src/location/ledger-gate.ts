/**
 * The delivery ledger as a delivery meets it: one read before a post (was the message delivered
 * already? is the job's lock still ours?) and one write after (the entry, and the count `status`
 * shows), plain commands in the location's hash slot, with no script. Calls for one location in
 * the same turn of the event loop share one round trip (`TickBatch`): the reads as one MGET, the
 * writes as one SET each and one HINCRBY, sent together. The write-back after Redis lost writes is `ledger-writeback.ts`'s: a read waits for it,
 * and a write that fails is retried there until it lands.
 */
import type { RedisClient } from '../connection.ts';
import { keysFor, type Keys } from '../keys.ts';
import { formatLedgerEntry, parseLedgerEntry, type LedgerEntry } from '../ledger.ts';
import { TickBatch } from '../tick-batch.ts';
import type { LedgerWriteBack } from './ledger-writeback.ts';

/** A job's BullMQ lock: `<prefix>:loc.{<locationId>}:<jobId>:lock`, in the location's hash slot. */
export interface JobLock {
  key: string;
  /** The token this worker holds the job with. */
  token: string;
}

export type BeforePost =
  | { kind: 'go' }
  /** HighLevel has it already: counted as skipped. */
  | { kind: 'delivered'; entry: LedgerEntry }
  /** The job's lock is not the token given: another worker may hold the job. */
  | { kind: 'lock-lost' };

export class LedgerGate {
  readonly #redis: RedisClient;
  readonly #keys: Keys;
  readonly #ttlMs: number;
  readonly #writeBack: LedgerWriteBack;

  constructor(redis: RedisClient, prefix: string, ledgerTtlMs: number, writeBack: LedgerWriteBack) {
    this.#redis = redis;
    this.#keys = keysFor(prefix);
    this.#ttlMs = ledgerTtlMs;
    this.#writeBack = writeBack;
  }

  /** Before a post: the ledger's entry for `key`, and the job's lock (when given). */
  async beforePost(locationId: string, key: string, lock: JobLock | undefined): Promise<BeforePost> {
    // Not before what Redis may have lost of the ledger is written back, by every worker.
    await this.#writeBack.readable();
    return this.#reads.add(locationId, { key, lock });
  }

  readonly #reads = new TickBatch<{ key: string; lock: JobLock | undefined }, BeforePost>(async (locationId, items) => {
    // One MGET: the entries, then the locks (all in the location's hash slot).
    const locks = items.filter((i) => i.lock !== undefined).map((i) => (i.lock as JobLock).key);
    const values = await this.#redis.mget(...items.map((i) => this.#keys.ledger(locationId, i.key)), ...locks);
    const entries = values.slice(0, items.length);
    const tokens = values.slice(items.length);
    let t = 0;
    let skipped = 0;
    const out = items.map((item, i): BeforePost => {
      const token = item.lock === undefined ? undefined : tokens[t++];
      if (item.lock !== undefined && token !== item.lock.token) return { kind: 'lock-lost' };
      const entry = entries[i];
      if (typeof entry !== 'string') return { kind: 'go' };
      skipped += 1;
      return { kind: 'delivered', entry: parseLedgerEntry(entry) };
    });
    if (skipped > 0) await this.#redis.hincrby(this.#keys.stats(locationId), 'skipped', skipped);
    return out;
  });

  /** After a post HighLevel accepted: the ledger entry (before the job completes) and the delivered count. */
  async recordDelivered(locationId: string, key: string, entry: LedgerEntry): Promise<void> {
    await this.#writeBack.writing({ locationId, key, entry }, () => this.#writes.add(locationId, { key, entry }));
  }

  readonly #writes = new TickBatch<{ key: string; entry: LedgerEntry }, void>(async (locationId, items) => {
    // Sent together on the one connection, in this order (one round trip). Not a pipeline object:
    // ioredis builds one with a method per script defined on the connection (about 80 here, with
    // BullMQ's), which cost more CPU than the commands themselves.
    await Promise.all([
      ...items.map(({ key, entry }) => this.#redis.set(this.#keys.ledger(locationId, key), formatLedgerEntry(entry), 'PX', this.#ttlMs)),
      this.#redis.hincrby(this.#keys.stats(locationId), 'delivered', items.length),
    ]);
    return items.map(() => undefined);
  });
}
