/**
 * The delivery ledger as a delivery meets it: one read before a post (was the message delivered
 * already? is the job's lock still ours?) and one write after (the entry, and the count `status`
 * shows), each one pipelined round trip of plain commands in the location's hash slot, with no
 * script. The write-back after Redis lost writes is `ledger-writeback.ts`'s: a read waits for it,
 * and a write that fails is retried there until it lands.
 */
import type { RedisClient } from '../connection.ts';
import { keysFor, type Keys } from '../keys.ts';
import { formatLedgerEntry, parseLedgerEntry, type LedgerEntry } from '../ledger.ts';
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
    const p = this.#redis.pipeline().get(this.#keys.ledger(locationId, key));
    if (lock !== undefined) p.get(lock.key);
    const replies = (await p.exec()) ?? [];
    for (const [error] of replies) if (error !== null) throw error;
    const entry = replies[0]?.[1];
    if (lock !== undefined && replies[1]?.[1] !== lock.token) return { kind: 'lock-lost' };
    if (typeof entry !== 'string') return { kind: 'go' };
    await this.#redis.hincrby(this.#keys.stats(locationId), 'skipped', 1);
    return { kind: 'delivered', entry: parseLedgerEntry(entry) };
  }

  /** After a post HighLevel accepted: the ledger entry (before the job completes) and the delivered count. */
  async recordDelivered(locationId: string, key: string, entry: LedgerEntry): Promise<void> {
    await this.#writeBack.writing({ locationId, key, entry }, async () => {
      const replies =
        (await this.#redis
          .pipeline()
          .set(this.#keys.ledger(locationId, key), formatLedgerEntry(entry), 'PX', this.#ttlMs)
          .hincrby(this.#keys.stats(locationId), 'delivered', 1)
          .exec()) ?? [];
      for (const [error] of replies) if (error !== null) throw error;
    });
  }
}
