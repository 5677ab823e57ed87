/**
 * The ledger entries this process wrote lately, kept in its memory: what Redis may lose when it
 * restarts from an AOF that missed its last second (`everysec`), or when a cluster replica is
 * promoted before it received them. Written back after such a loss, they keep the messages they
 * name from being posted to HighLevel a second time.
 *
 * It keeps the last `keepMs` of delivery activity, not of wall-clock time: while Redis is away
 * nothing is delivered and nothing ages out, however long it takes to come back.
 */
import type { LedgerEntry } from '../ledger.ts';

export interface RecentDelivery {
  locationId: string;
  key: string;
  entry: LedgerEntry;
}

export class RecentDeliveries {
  readonly #keepMs: number;
  readonly #max: number;
  #items: (RecentDelivery & { at: number })[] = [];
  #head = 0;

  /** `keepMs`: how far back to keep; `max`: at most this many entries (the oldest go first). */
  constructor(keepMs: number, max: number) {
    this.#keepMs = keepMs;
    this.#max = max;
  }

  add(delivery: RecentDelivery, now = Date.now()): void {
    this.#items.push({ ...delivery, at: now });
    while (this.#head < this.#items.length && ((this.#items[this.#head]?.at ?? now) < now - this.#keepMs || this.size > this.#max)) this.#head += 1;
    // Drop the aged-out front now and then, not on every add.
    if (this.#head > 1_024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  /** What is kept, by location (all keys of a location share a cluster slot). */
  byLocation(): Map<string, RecentDelivery[]> {
    const out = new Map<string, RecentDelivery[]>();
    for (let i = this.#head; i < this.#items.length; i += 1) {
      const { locationId, key, entry } = this.#items[i] as RecentDelivery;
      const list = out.get(locationId) ?? [];
      list.push({ locationId, key, entry });
      out.set(locationId, list);
    }
    return out;
  }
}
