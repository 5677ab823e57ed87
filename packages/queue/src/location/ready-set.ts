/**
 * The dispatchers' ready set: which locations have work and when one may be taken, who holds a
 * lease on which, and the wake channel that tells idle dispatchers a location became due. Owns the
 * keys `{ready}`, `{ready}:live`, `{ready}:leases` (one hash slot by design: its scripts touch
 * them together and nothing else, so they run on Redis Cluster) and `wake`, and the scripts
 * `commands/mark-ready.lua`, `claim.lua`, `end-lease.lua` and `renew-lease.lua`.
 *
 * A held location is not in a worker's memory: it is a score in Redis, so a location that is
 * known but idle costs no process anything (no connection, timer or poll).
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../connection.ts';
import { defineScripts } from '../scripts.ts';
import { redisNow } from './redis-time.ts';

export interface ReadySetKeys {
  /** ZSET: locations with work, scored by when one may be taken (see `commands/claim.lua`). */
  ready: string;
  /** ZSET: due locations with live messages, taken before the others. */
  readyLive: string;
  /** HASH: location -> the score of the lease a worker holds on it. */
  leases: string;
}

export function readySetKeys(prefix: string): ReadySetKeys {
  return { ready: `${prefix}:{ready}`, readyLive: `${prefix}:{ready}:live`, leases: `${prefix}:{ready}:leases` };
}

/** The pub/sub channel on which `mark-ready.lua` says locations became due: idle dispatchers subscribe to it and wake up. */
export function wakeChannel(prefix: string): string {
  return `${prefix}:wake`;
}

/** What a message on the wake channel says: locations became due (`live`: for live messages), or live messages came for a held one. */
export type Wake = { kind: 'due'; live: boolean } | { kind: 'live'; locationId: string };

/** Reads a message of the wake channel (see `commands/mark-ready.lua`). */
export function readWake(message: string): Wake {
  if (message.startsWith('live:')) return { kind: 'live', locationId: message.slice('live:'.length) };
  return { kind: 'due', live: message === 'due:live' };
}

/** A worker's hold on a location, for one turn. */
export interface Lease {
  locationId: string;
  /** The lease's score in the ready set: it ends then unless renewed. */
  lease: string;
  /** Its jobs must be checked for stalls: its last holder died, or left another's jobs active. */
  check?: boolean;
}

/**
 * How a turn ends: `idle` (nothing left to take; `ms` >= 0 makes it due again after that long: a
 * retry's backoff), `check` (nothing to take, but another process's jobs are active: due after
 * `ms`, to be checked for stalls), `turn` (its time slice is over and it has more), `wait` (the
 * whole location waits `ms`; with `check`, its next holder checks its jobs for stalls again:
 * BullMQ's check gives a job back on its second pass, a stalled interval after the first).
 */
export type TurnEnd = { mode: 'idle'; ms?: number } | { mode: 'check'; ms: number } | { mode: 'turn' } | { mode: 'wait'; ms: number; check?: boolean };

/** Why locations become due: producers' messages (live ones go first), or a person resuming one (due now even if it waited). */
export type MarkMode = 'live' | 'backfill' | 'resume';

/** A location's place in the ready set, as a snapshot shows it. */
export interface Place {
  /** Epoch ms when it may be taken (a lease's end while held), undefined if it has no work. */
  dueAt: number | undefined;
  /** A worker holds a lease on it. */
  held: boolean;
}

export class ReadySet {
  readonly #redis: RedisClient;
  readonly #keys: ReadySetKeys;
  /** The channel `mark` publishes on when a location became due. */
  readonly wakeChannel: string;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#keys = readySetKeys(prefix);
    this.wakeChannel = wakeChannel(prefix);
    defineScripts(redis);
  }

  /** Producers added messages for these locations: they become due (live ones go first). */
  async markReady(locationIds: Iterable<string>, live: boolean): Promise<number> {
    return this.mark(locationIds, live ? 'live' : 'backfill');
  }

  /** Makes the locations due (see MarkMode); returns how many became due. */
  async mark(locationIds: Iterable<string>, mode: MarkMode): Promise<number> {
    const ids = [...new Set(locationIds)];
    if (ids.length === 0) return 0;
    const k = this.#keys;
    return this.#redis.ghlMarkReady(k.ready, k.readyLive, k.leases, mode, this.wakeChannel, ...ids);
  }

  /** Takes up to `count` due locations for `leaseMs` (`liveOnly`: those with live messages only); says when the next one is due (ms, or undefined). */
  async claim(count: number, leaseMs: number, liveOnly = false): Promise<{ leases: Lease[]; nextDueInMs: number | undefined }> {
    const k = this.#keys;
    const r = await this.#redis.ghlClaim(k.ready, k.readyLive, k.leases, count, leaseMs, liveOnly ? '1' : '0');
    const leases: Lease[] = [];
    for (let i = 1; i + 2 < r.length; i += 3) {
      leases.push({ locationId: String(r[i]), lease: String(r[i + 1]), ...(Number(r[i + 2]) === 1 ? { check: true } : {}) });
    }
    const next = Number(r[0]);
    return { leases, nextDueInMs: next < 0 ? undefined : next };
  }

  /** How many locations are due now and not held (waiting for a place in some process). */
  async dueCount(): Promise<number> {
    return this.#redis.zcount(this.#keys.ready, '-inf', await redisNow(this.#redis));
  }

  /** Ends a turn (see TurnEnd). False when another process holds the location by now. */
  async endLease(lease: Lease, end: TurnEnd): Promise<boolean> {
    const ms = end.mode === 'turn' ? 0 : Math.max(end.mode === 'idle' ? -1 : 0, Math.ceil(end.ms ?? -1));
    const k = this.#keys;
    const check = end.mode === 'wait' && end.check === true ? '1' : '0';
    const r = await this.#redis.ghlEndLease(k.ready, k.readyLive, k.leases, lease.locationId, lease.lease, end.mode, ms, check);
    return r === 1;
  }

  /** Extends a lease still in use; false when another process holds the location by now. */
  async renewLease(lease: Lease, leaseMs: number): Promise<boolean> {
    const k = this.#keys;
    const r = await this.#redis.ghlRenewLease(k.ready, k.readyLive, k.leases, lease.locationId, lease.lease, leaseMs);
    if (r === 0) return false;
    lease.lease = String(r);
    return true;
  }

  /** How long until the location may be taken (ms, 0 if due now), or undefined if it has no work. */
  async dueInMs(locationId: string): Promise<number | undefined> {
    const [score, now] = await Promise.all([this.#redis.zscore(this.#keys.ready, locationId), redisNow(this.#redis)]);
    return score === null ? undefined : Math.max(0, Number(score) - now);
  }

  /** Every location in the ready set (with work, due or not, held or not). */
  async members(): Promise<string[]> {
    return this.#redis.zrange(this.#keys.ready, 0, -1);
  }

  /** Queues the reads of a location's place on `p` (the `{ready}` slot), for a snapshot. */
  readPlace(p: ChainableCommander, locationId: string): void {
    p.zscore(this.#keys.ready, locationId).hget(this.#keys.leases, locationId);
  }

  /** Reads the replies of `readPlace`, in its order. */
  parsePlace([score, lease]: readonly unknown[]): Place {
    // 'check' and 'recheck': left by a turn's end for the next holder's stalled-job check (end-lease.lua), not a holder.
    return {
      dueAt: score === null || score === undefined ? undefined : Number(score),
      held: lease !== null && lease !== undefined && lease !== 'check' && lease !== 'recheck',
    };
  }
}
