/**
 * A location's outcomes so far and its lookups' budget. Owns the key `lookups:{<id>}:<minute>`
 * (STRING: lookups (reconcile) the location made in one minute, expiring) and the fields of the
 * `stats:{<id>}` HASH that are not the limiter's: `dead`, `lookup-<result>`, `contact-found`,
 * `contact-created` and `uploads`. (`delivered` and
 * `skipped` are counted by the limiter's own scripts, in the call that writes or reads the
 * ledger: `keys.ts` names the hash for both.) How the hash reads back for a snapshot is here too.
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../connection.ts';
import { keysFor, type Keys } from '../keys.ts';

/** How a lookup (reconcile) ended: found at HighLevel, absent there, or undecided (posted as without one). */
export type LookupCount = 'found' | 'absent' | 'undecided';

export function lookupsKey(prefix: string, locationId: string, minute: number): string {
  return `${prefix}:lookups:{${locationId}}:${minute}`;
}

/** A location's outcomes, as a snapshot shows them. */
export interface Outcomes {
  delivered: number;
  skipped: number;
  dead: number;
  /** Lookups before posting again after an unknown outcome, by result. */
  lookups: Record<LookupCount, number>;
  /** Contacts named by phone or email that HighLevel found, or created, for this location. */
  contacts: { found: number; created: number };
  /** Files uploaded. */
  uploads: number;
}

export class LocationOutcomes {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #keys: Keys;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#keys = keysFor(prefix);
  }

  /** A message of the location was dead-lettered. */
  async countDead(locationId: string): Promise<void> {
    await this.#redis.hincrby(this.#keys.stats(locationId), 'dead', 1);
  }

  /** Takes one of the location's lookups of this minute (every process shares them); false when they are spent. */
  async takeLookup(locationId: string, perMinute: number): Promise<boolean> {
    const key = lookupsKey(this.#prefix, locationId, Math.floor(Date.now() / 60_000));
    const r = await this.#redis.multi().incr(key).pexpire(key, 120_000).exec();
    return Number(r?.[0]?.[1] ?? perMinute + 1) <= perMinute;
  }

  /** Counts a lookup's result for `status` and metrics readers. */
  async countLookup(locationId: string, result: LookupCount): Promise<void> {
    await this.#redis.hincrby(this.#keys.stats(locationId), `lookup-${result}`, 1);
  }

  /** A contact found or created by an upsert (prepare.ts). */
  async countContact(locationId: string, created: boolean): Promise<void> {
    await this.#redis.hincrby(this.#keys.stats(locationId), created ? 'contact-created' : 'contact-found', 1);
  }

  async countUploads(locationId: string, files: number): Promise<void> {
    await this.#redis.hincrby(this.#keys.stats(locationId), 'uploads', files);
  }

  /** Queues the read of a location's outcomes on `p` (the location's slot), for a snapshot. */
  readOutcomes(p: ChainableCommander, locationId: string): void {
    p.hgetall(this.#keys.stats(locationId));
  }

  /** Reads the reply of `readOutcomes`. */
  parseOutcomes([hash]: readonly unknown[]): Outcomes {
    const stats = (hash ?? {}) as Record<string, string>;
    const n = (x: string | undefined) => Number(x ?? 0);
    return {
      delivered: n(stats.delivered),
      skipped: n(stats.skipped),
      dead: n(stats.dead),
      lookups: { found: n(stats['lookup-found']), absent: n(stats['lookup-absent']), undecided: n(stats['lookup-undecided']) },
      contacts: { found: n(stats['contact-found']), created: n(stats['contact-created']) },
      uploads: n(stats.uploads),
    };
  }
}
