/**
 * A location's state has one owner: this module. Every per-location key and transition goes
 * through it: its place in the dispatcher's ready set (mark, claim, end or renew a lease), its rate
 * budget and delivery ledger (acquire, proceed, settle, refuse, release: `rate-limiter.ts` holds the
 * arithmetic), and its holds (pause for credentials, park for the daily budget, resume). `status`
 * and metrics read `snapshot()`, never the keys themselves.
 *
 * A held location is not in a worker's memory: it is a score in Redis, so a location that is
 * known but idle costs no process anything (no connection, timer or poll).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { QueueKeys, Queue } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import { mixesSlots, redisRunId, scanEvery, type RedisClient } from './connection.ts';
import { dayIndex, effectiveBudget, type Budget } from './rate-budget.ts';
import { keysFor, locationQueueName, type Keys } from './keys.ts';
import { formatLedgerEntry, type LedgerEntry } from './ledger.ts';
import { RecentDeliveries, type RecentDelivery } from './recent-deliveries.ts';
import { RateLimiter, rateKeys, type Acquired, type JobLock, type RateHeaders, type RateLimiterOptions } from './rate-limiter.ts';
import { defineScripts } from './scripts.ts';

export type LocationHold = { state: 'paused'; reason: string; since: number } | { state: 'parked'; reason: string; since: number; until: number };

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
 * whole location waits `ms`).
 */
export type TurnEnd = { mode: 'idle'; ms?: number } | { mode: 'check'; ms: number } | { mode: 'turn' } | { mode: 'wait'; ms: number };

/** What `repairAfterLoss` found and put back. */
export interface RepairReport {
  /** The Redis run id(s) now. */
  runId: string;
  /** Locations whose queues hold jobs (waiting, retrying, active or paused). */
  withWork: number;
  /** Of those, locations that had lost their place in the ready set and got it back. */
  requeued: number;
  /** Locations with a hold, listed in the held set again. */
  held: number;
}

/** How a lookup (reconcile) ended: found at HighLevel, absent there, or undecided (posted as without one). */
export type LookupCount = 'found' | 'absent' | 'undecided';

export interface LocationSnapshot {
  locationId: string;
  /** BullMQ's counts: waiting (incl. paused and prioritized), active, delayed (retries), failed. */
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  paused: boolean;
  hold: LocationHold | undefined;
  delivered: number;
  skipped: number;
  dead: number;
  /** Lookups before posting again after an unknown outcome, by result. */
  lookups: Record<LookupCount, number>;
  /** Requests counted in the current window (answered and in flight). */
  sentInWindow: number;
  /** The budget after what HighLevel's headers taught. */
  budget: Budget;
  dailyUsed: number;
  /** A 429's or an outage's wait: epoch ms, 0 if none. */
  blockedUntil: number;
  /** Its place in the ready set: epoch ms when it may be taken (a lease's end while held), undefined if it has no work. */
  dueAt: number | undefined;
  held: boolean;
}

export interface LocationStateOptions {
  prefix: string;
  /** Worker side only: the rate limiter's settings. */
  limiter?: Omit<RateLimiterOptions, 'prefix'>;
  /** For `snapshot()`: the budget before learning (settings and overrides). */
  budget?: (locationId: string) => Budget;
  /** GHL_DAILY_RESET as ms after midnight UTC (for `snapshot()`'s day). */
  resetOffsetMs?: number;
}

/**
 * How much of this process's own ledger writes it keeps to write back after Redis lost writes:
 * the last 30 s of deliveries (an `everysec` AOF loses about one; a cluster's replicas lag less;
 * a failover is noticed within 10 s), at most 50,000 entries (about 10 MB).
 */
const RECENT_KEEP_MS = 30_000;
const RECENT_MAX = 50_000;

/**
 * After Redis lost writes, every worker alive lately may remember ledger entries it lost, and each
 * writes back only its own: no worker reads the ledger until all of them have (or are presumed
 * gone). A worker says it is alive every WRITER_BEAT_MS (one script of five commands: an idle
 * worker's Redis cost); one not heard from for WRITER_ALIVE_MS is gone (a worker reconnects within
 * 2 s of Redis coming back); one that has not written back within PEERS_WAIT_MS of this worker's
 * own write-back is not waited for longer.
 */
const WRITER_BEAT_MS = 5_000;
const WRITER_ALIVE_MS = 15_000;
const WRITER_FORGET_MS = 600_000;
const PEERS_WAIT_MS = 15_000;
const RESTORED_TTL_S = 7 * 24 * 3600;

/** What a worker did after Redis came back as another server. */
export interface RestoreReport {
  /** Ledger entries this process remembered that Redis had lost, written back. */
  written: number;
  /** How long it waited for the other workers to write theirs back. */
  waitedMs: number;
  /** Workers alive before the loss that had not written back when it stopped waiting (presumed gone). */
  notRestored: number;
}

export class LocationState {
  readonly #redis: RedisClient;
  readonly #o: LocationStateOptions;
  readonly #keys: Keys;
  readonly #limiter: RateLimiter | undefined;
  /** Ledger entries this process wrote lately: written back when Redis comes back having lost writes. */
  readonly #recent = new RecentDeliveries(RECENT_KEEP_MS, RECENT_MAX);
  /** Ledger writes that failed and are retried until they land (see #recordWhenPossible). */
  readonly #recording = new Set<Promise<void>>();
  /** The Redis run id(s) this process last saw: a new one means a restart or a failover. */
  #seenRunId: string | undefined;
  /** Set while Redis is away and until what it lost is written back: the ledger is not read meanwhile. */
  #restoring: Promise<void> | undefined;
  #onRestored: ((report: RestoreReport) => void) | undefined;
  #writingBack: Promise<void> | undefined;
  /** This process among the workers that may remember ledger entries (see WRITER_BEAT_MS). */
  readonly #writerId = randomUUID();
  /** The workers alive at this process's last beat: waited for after a loss even if Redis lost them too. */
  #peers: string[] = [];
  /** Says this process is alive now (set while watching for loss). */
  #beat: (() => void) | undefined;

  constructor(redis: RedisClient, options: LocationStateOptions) {
    this.#redis = redis;
    this.#o = options;
    this.#keys = keysFor(options.prefix);
    defineScripts(redis);
    this.#limiter = options.limiter === undefined ? undefined : new RateLimiter(redis, { prefix: options.prefix, ...options.limiter });
  }

  // --- the ready set -------------------------------------------------------------------------

  /** Producers added messages for these locations: they become due (live ones go first). */
  async markReady(locationIds: Iterable<string>, live: boolean): Promise<number> {
    return this.#mark(locationIds, live ? 'live' : 'backfill');
  }

  async #mark(locationIds: Iterable<string>, mode: 'live' | 'backfill' | 'resume'): Promise<number> {
    const ids = [...new Set(locationIds)];
    if (ids.length === 0) return 0;
    return this.#redis.ghlMarkReady(this.#keys.ready, this.#keys.readyLive, this.#keys.leases, mode, this.#keys.wakeChannel, ...ids);
  }

  /** Takes up to `count` due locations for `leaseMs`; says when the next one is due (ms, or undefined). */
  async claim(count: number, leaseMs: number): Promise<{ leases: Lease[]; nextDueInMs: number | undefined }> {
    const r = await this.#redis.ghlClaim(this.#keys.ready, this.#keys.readyLive, this.#keys.leases, count, leaseMs);
    const leases: Lease[] = [];
    for (let i = 1; i + 2 < r.length; i += 3) {
      leases.push({ locationId: String(r[i]), lease: String(r[i + 1]), ...(Number(r[i + 2]) === 1 ? { check: true } : {}) });
    }
    const next = Number(r[0]);
    return { leases, nextDueInMs: next < 0 ? undefined : next };
  }

  /** How many locations are due now and not held (waiting for a place in some process). */
  async dueCount(): Promise<number> {
    return this.#redis.zcount(this.#keys.ready, '-inf', await this.#redisNow());
  }

  /** Ends a turn (see TurnEnd). False when another process holds the location by now. */
  async endLease(lease: Lease, end: TurnEnd): Promise<boolean> {
    const ms = end.mode === 'turn' ? 0 : Math.max(end.mode === 'idle' ? -1 : 0, Math.ceil(end.ms ?? -1));
    const r = await this.#redis.ghlEndLease(this.#keys.ready, this.#keys.readyLive, this.#keys.leases, lease.locationId, lease.lease, end.mode, ms);
    return r === 1;
  }

  /** Extends a lease still in use; false when another process holds the location by now. */
  async renewLease(lease: Lease, leaseMs: number): Promise<boolean> {
    const r = await this.#redis.ghlRenewLease(this.#keys.ready, this.#keys.readyLive, this.#keys.leases, lease.locationId, lease.lease, leaseMs);
    if (r === 0) return false;
    lease.lease = String(r);
    return true;
  }

  // --- the rate budget and the delivery ledger ------------------------------------------------

  /** `lock`: the job's BullMQ lock, checked in the same call (a job no longer ours takes nothing: `lock-lost`). */
  async acquire(locationId: string, key: string, slot: string, lock?: JobLock): Promise<Acquired> {
    // The ledger is read here: not before what Redis may have lost of it is written back, by every worker.
    if (this.#restoring !== undefined) await this.#restoring;
    if (this.#writingBack !== undefined) await this.#writingBack;
    return this.#rate().acquire(locationId, key, slot, lock);
  }

  proceed(locationId: string, slot: string): ReturnType<RateLimiter['proceed']> {
    return this.#rate().proceed(locationId, slot);
  }

  async settle(locationId: string, key: string, slot: string, rate: RateHeaders | undefined, delivered?: LedgerEntry, health?: 'up' | 'down'): Promise<number> {
    // HighLevel has the message whether or not this call lands: remembered first.
    if (delivered !== undefined) this.#recent.add({ locationId, key, entry: delivered });
    try {
      return await this.#rate().settle(locationId, key, slot, rate, delivered, health);
    } catch (error) {
      // Redis failed the call (a cluster failing over, say): the job will be taken again, and its
      // ledger entry must be there by then. It is written on its own as soon as Redis takes it.
      if (delivered !== undefined) {
        const writing = this.#recordWhenPossible(locationId, key, delivered).finally(() => this.#recording.delete(writing));
        this.#recording.add(writing);
      }
      throw error;
    }
  }

  /**
   * Writes a ledger entry whose settle failed, for as long as this process lives (every 5 s at
   * most once Redis keeps failing): HighLevel holds the message, and without its entry the job,
   * taken again, would be posted again. A stopping worker waits for these (`ledgerWrites`).
   */
  async #recordWhenPossible(locationId: string, key: string, entry: LedgerEntry): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)));
      try {
        await this.#redis.set(...this.#restoreArgs({ locationId, key, entry }));
        return;
      } catch {
        // Still failing over: try again.
      }
    }
  }

  /** Ledger entries whose write failed and is being retried; resolves once every one is written. */
  async ledgerWrites(): Promise<number> {
    const pending = this.#recording.size;
    while (this.#recording.size > 0) await Promise.all([...this.#recording]);
    return pending;
  }

  /**
   * Worker side: notices Redis coming back as another server (restarted, perhaps from an AOF that
   * missed its last second; or a cluster master replaced by its replica) and writes this process's
   * recent ledger entries back (those still there are left alone), so the messages they name are
   * not posted twice. Each worker remembers only its own entries, so none reads the ledger again
   * before every worker alive before the loss has written its entries back (or is presumed gone:
   * see WRITER_ALIVE_MS): a worker that reconnected first would otherwise post again what another
   * delivered in the lost second. On one Redis no message is checked against the ledger from the
   * moment the connection drops until that is done; on a cluster the masters are compared when its
   * slots are refreshed, and by `repairAfterLoss`. `onRestored` hears what was written back and how
   * long the others were waited for. Returns a function that stops watching.
   */
  watchForLoss(onRestored?: (report: RestoreReport) => void): () => void {
    this.#onRestored = onRestored;
    const redis = this.#redis;
    const beat = () => {
      const seen = this.#seenRunId;
      redis
        .ghlWritersBeat(this.#keys.writers, this.#keys.restored(seen ?? ''), this.#writerId, WRITER_ALIVE_MS, seen === undefined ? '0' : '1', RESTORED_TTL_S)
        .then(
          (alive) => {
            // Not while a write-back is under way: what was known before the loss is what counts.
            if (this.#writingBack === undefined && this.#restoring === undefined) this.#peers = alive.filter((id) => id !== this.#writerId);
          },
          () => undefined, // Redis is away: the next beat says it
        );
    };
    this.#beat = beat;
    beat();
    const beating = setInterval(beat, WRITER_BEAT_MS);
    beating.unref();
    const stopBeating = () => {
      clearInterval(beating);
      this.#beat = undefined;
      // Gone on purpose: nobody waits for this process after a loss.
      redis.zrem(this.#keys.writers, this.#writerId).catch(() => undefined);
    };
    const check = () =>
      redisRunId(redis).then(
        (runId) => this.#writeBackIfChanged(runId),
        () => undefined, // Redis went away again: the next ready checks
      );
    void check();
    if (!mixesSlots(redis)) {
      // A cluster: its client stays ready through a failover.
      const onRefresh = () => void check();
      redis.on('refresh', onRefresh);
      return () => {
        stopBeating();
        redis.off('refresh', onRefresh);
      };
    }
    let reopened: (() => void) | undefined;
    const onClose = () => {
      if (this.#restoring !== undefined) return;
      this.#restoring = new Promise<void>((resolve) => (reopened = resolve));
    };
    const onReady = () => {
      const release = reopened;
      void check().finally(() => {
        if (release === undefined || reopened !== release) return;
        this.#restoring = undefined;
        reopened = undefined;
        release();
      });
    };
    redis.on('close', onClose);
    redis.on('ready', onReady);
    return () => {
      stopBeating();
      redis.off('close', onClose);
      redis.off('ready', onReady);
      reopened?.();
      this.#restoring = undefined;
    };
  }

  /**
   * Writes the recent ledger entries back if Redis is not the server this process last saw, then
   * waits for the other workers to have written theirs. The new run id counts as seen only once
   * every entry was written (or found there): a write that fails (a master still down, Redis gone
   * again) leaves it to the next check.
   */
  async #writeBackIfChanged(runId: string): Promise<void> {
    if (runId === '' || runId === this.#seenRunId) return;
    // One write-back at a time; a check meanwhile waits for it (and then finds the id seen).
    this.#writingBack ??= this.#restore(runId).finally(() => (this.#writingBack = undefined));
    await this.#writingBack;
  }

  async #restore(runId: string): Promise<void> {
    // The first run id this process sees: it remembers nothing Redis could have lost, but another
    // worker may still be writing back what it remembers.
    const first = this.#seenRunId === undefined;
    const written = first || this.#recent.size === 0 ? 0 : await this.#writeBack();
    if (written === undefined) return;
    const started = Date.now();
    let pending: string[];
    try {
      const peers = first ? [] : this.#peers;
      const ask = (me: string) =>
        this.#redis.ghlWritersPending(this.#keys.writers, this.#keys.restored(runId), me, WRITER_ALIVE_MS, RESTORED_TTL_S, WRITER_FORGET_MS, ...peers);
      pending = await ask(this.#writerId);
      while (pending.length > 0 && Date.now() - started < PEERS_WAIT_MS) {
        await sleep(50, undefined, { ref: false });
        pending = await ask('');
      }
    } catch {
      return; // Redis went away again: the next check does it all again
    }
    this.#seenRunId = runId;
    this.#beat?.(); // the peers as they are now, for the next loss
    if (!first) this.#onRestored?.({ written, waitedMs: Date.now() - started, notRestored: pending.length });
  }

  /** Writes this process's recent ledger entries back; how many were missing, or undefined when a write failed. */
  async #writeBack(): Promise<number | undefined> {
    let written = 0;
    let failed = 0;
    // One pipeline per location: its keys share a slot.
    await Promise.all(
      [...this.#recent.byLocation().values()].map(async (deliveries) => {
        const p = this.#redis.pipeline();
        for (const d of deliveries) p.set(...this.#restoreArgs(d));
        const replies = (await p.exec().catch(() => null)) ?? deliveries.map(() => [new Error('not sent'), null] as const);
        for (const [error, reply] of replies) {
          if (error !== null) failed += 1;
          else if (reply === 'OK') written += 1;
        }
      }),
    );
    return failed > 0 ? undefined : written;
  }

  /** SET arguments that write a ledger entry again, unless it is there (it was, or settle wrote it meanwhile). */
  #restoreArgs({ locationId, key, entry }: RecentDelivery): [string, string, 'PX', number, 'NX'] {
    const ttlMs = this.#o.limiter?.ledgerTtlMs;
    if (ttlMs === undefined) throw new Error('LocationState was built without limiter settings');
    return [this.#keys.ledger(locationId, key), formatLedgerEntry(entry), 'PX', ttlMs, 'NX'];
  }

  refuse(locationId: string, slot: string, retryAfterMs: number | undefined): Promise<number> {
    return this.#rate().refuse(locationId, slot, retryAfterMs);
  }

  release(locationId: string, slot: string): Promise<void> {
    return this.#rate().release(locationId, slot);
  }

  /** A message of the location was dead-lettered (deliveries and skips are counted by the limiter's scripts). */
  async countDead(locationId: string): Promise<void> {
    await this.#redis.hincrby(this.#keys.stats(locationId), 'dead', 1);
  }

  // --- lookups (reconcile) ---------------------------------------------------------------------

  /** Takes one of the location's lookups of this minute (every process shares them); false when they are spent. */
  async takeLookup(locationId: string, perMinute: number): Promise<boolean> {
    const key = this.#keys.lookups(locationId, Math.floor(Date.now() / 60_000));
    const r = await this.#redis.multi().incr(key).pexpire(key, 120_000).exec();
    return Number(r?.[0]?.[1] ?? perMinute + 1) <= perMinute;
  }

  /** Counts a lookup's result for `status` and metrics readers. */
  async countLookup(locationId: string, result: LookupCount): Promise<void> {
    await this.#redis.hincrby(this.#keys.stats(locationId), `lookup-${result}`, 1);
  }

  // --- holds -----------------------------------------------------------------------------------

  /** Stops the location in every process until resumed (credentials rejected, or none configured). */
  async pause(locationId: string, reason: string): Promise<void> {
    await this.#writeHold(locationId, { state: 'paused', reason, since: Date.now() });
    await this.#withQueue(locationId, (q) => q.pause());
  }

  /** Records why the location waits until `until` (its daily budget is spent); the wait itself is the turn's end. */
  async park(locationId: string, until: number, reason: string): Promise<void> {
    await this.#writeHold(locationId, { state: 'parked', reason, since: Date.now(), until });
  }

  /**
   * Starts a paused (or parked) location again, due now in every process; returns what held it.
   * A parked location whose day is not over parks again at its first message.
   */
  async resume(locationId: string): Promise<LocationHold | undefined> {
    const hold = await this.hold(locationId);
    await this.#withQueue(locationId, (q) => q.resume());
    // Two slots on Redis Cluster (the location's, the held set's): two commands, the hold first.
    await this.#redis.del(this.#keys.state(locationId));
    await this.#redis.srem(this.#keys.held, locationId);
    await this.#mark([locationId], 'resume');
    return hold;
  }

  /** How long until the location may be taken (ms, 0 if due now), or undefined if it has no work. */
  async dueInMs(locationId: string): Promise<number | undefined> {
    const [score, now] = await Promise.all([this.#redis.zscore(this.#keys.ready, locationId), this.#redisNow()]);
    return score === null ? undefined : Math.max(0, Number(score) - now);
  }

  async hold(locationId: string): Promise<LocationHold | undefined> {
    return parseHold(await this.#redis.hgetall(this.#keys.state(locationId)));
  }

  // --- the registry and the read side ---------------------------------------------------------

  /** Makes locations known to `status`, `dlq` and metrics (workers do not read the registry). */
  async register(locationIds: Iterable<string>): Promise<void> {
    const ids = [...new Set(locationIds)];
    if (ids.length > 0) await this.#redis.sadd(this.#keys.locations, ...ids);
  }

  /** How many locations ever had a message enqueued. */
  async knownCount(): Promise<number> {
    return this.#redis.scard(this.#keys.locations);
  }

  /**
   * The locations that may have messages waiting, in flight or retrying, or a hold: those in the
   * ready set and those paused or parked. What the metrics read, so that a scrape grows with the
   * locations at work, not with every location ever known.
   */
  async active(): Promise<string[]> {
    const [ready, held] = await Promise.all([this.#redis.zrange(this.#keys.ready, 0, -1), this.#redis.smembers(this.#keys.held)]);
    return [...new Set([...ready, ...held])].sort();
  }

  /** Every location that ever had a message enqueued, sorted. */
  async known(): Promise<string[]> {
    return (await this.#redis.smembers(this.#keys.locations)).sort();
  }

  // --- after Redis lost writes -----------------------------------------------------------------

  /**
   * Redis can lose writes it acknowledged: a restart that replays an AOF missing its last second
   * (`everysec` and a host crash), or a cluster failover to a replica the last writes had not
   * reached. A location's own keys share a slot, so they stay consistent with each other; but the
   * structures shared by all locations live elsewhere (on a cluster, on other masters), and may now
   * disagree with them: above all, a location with jobs that lost its place in the ready set would
   * never be taken again. So when the servers' run ids differ from those this check last recorded
   * (or none is recorded), one process at a time scans every master for location queues holding
   * jobs, and puts each back in the registry, in the ready set (when it has no place there; due
   * now, as backfill) and in the held set (when it has a hold). A SCAN over every key: once per
   * restart or failover. Returns what it did, or undefined when nothing changed, another process
   * is at it, or `signal` stopped it (a worker shutting down does not wait for a long scan).
   */
  async repairAfterLoss(signal?: AbortSignal): Promise<RepairReport | undefined> {
    const runId = await redisRunId(this.#redis);
    await this.#writeBackIfChanged(runId);
    if ((await this.#redis.get(this.#keys.redisRun)) === runId) return undefined;
    const me = randomUUID();
    if ((await this.#redis.set(this.#keys.repairLock, me, 'PX', 120_000, 'NX')) === null) return undefined;
    try {
      const ids = new Set<string>();
      const escaped = this.#o.prefix.replace(/[*?[\]\\]/g, '\\$&');
      for await (const batch of scanEvery(this.#redis, `${escaped}:loc.{*}:*`)) {
        // A stopping process leaves the check to the next one (nothing is recorded, the lock is freed).
        if (signal?.aborted === true) return undefined;
        for (const key of batch) {
          const id = WORK_KEY.exec(key.slice(this.#o.prefix.length))?.[1];
          if (id !== undefined) ids.add(id);
        }
      }
      const found = await this.snapshot([...ids]);
      const lost = found.filter((s) => s.waiting + s.active + s.delayed > 0 && s.dueAt === undefined && s.hold?.state !== 'paused').map((s) => s.locationId);
      const held = found.filter((s) => s.hold !== undefined).map((s) => s.locationId);
      await this.register(ids);
      if (held.length > 0) await this.#redis.sadd(this.#keys.held, ...held);
      await this.#mark(lost, 'backfill');
      await this.#redis.set(this.#keys.redisRun, runId);
      return { runId, withWork: ids.size, requeued: lost.length, held: held.length };
    } finally {
      // Only our own lock: a check that outlived its TTL must not end another's.
      if ((await this.#redis.get(this.#keys.repairLock)) === me) await this.#redis.del(this.#keys.repairLock);
    }
  }

  /** What `status` and metrics show, for many locations at once: one pipelined round trip per 500. */
  async snapshot(locationIds: readonly string[]): Promise<LocationSnapshot[]> {
    const now = await this.#redisNow();
    const day = String(dayIndex(now, this.#o.resetOffsetMs ?? 0));
    const out: LocationSnapshot[] = [];
    const FIELDS = 16;
    const queueKeys = new QueueKeys(this.#o.prefix);
    // A location's own keys (one slot: its `{id}`), then its place in the ready set (the `{ready}` slot).
    const own = (p: ChainableCommander, id: string) => {
      const q = (type: string) => queueKeys.toKey(locationQueueName(id), type);
      const rk = rateKeys(this.#o.prefix, id);
      p.llen(q('wait')).llen(q('paused')).zcard(q('prioritized')).llen(q('active')).zcard(q('delayed')).zcard(q('failed')).hget(q('meta'), 'paused');
      p.hgetall(this.#keys.stats(id)).hmget(rk.learned, 'max', 'windowMs', 'daily');
      p.zcount(rk.answered, `(${now}`, '+inf').zcount(rk.inflight, `(${now}`, '+inf').hget(rk.daily, day).get(rk.block);
      p.hgetall(this.#keys.state(id));
    };
    const place = (p: ChainableCommander, id: string) => p.zscore(this.#keys.ready, id).hget(this.#keys.leases, id);
    const values = (results: [Error | null, unknown][] | null) =>
      (results ?? []).map(([error, value]) => {
        if (error) throw error;
        return value;
      });
    for (let start = 0; start < locationIds.length; start += 500) {
      const ids = locationIds.slice(start, start + 500);
      let rows: unknown[][];
      if (mixesSlots(this.#redis)) {
        const p = this.#redis.pipeline();
        for (const id of ids) {
          own(p, id);
          place(p, id);
        }
        const r = values(await p.exec());
        rows = ids.map((_, i) => r.slice(i * FIELDS, (i + 1) * FIELDS));
      } else {
        // Redis Cluster: a pipeline may not mix slots, so one per location (ioredis sends them to
        // each location's master together) and one for the ready set.
        const [owns, places] = await Promise.all([
          Promise.all(
            ids.map(async (id) => {
              const p = this.#redis.pipeline();
              own(p, id);
              return values(await p.exec());
            }),
          ),
          (async () => {
            const p = this.#redis.pipeline();
            for (const id of ids) place(p, id);
            return values(await p.exec());
          })(),
        ]);
        rows = ids.map((_, i) => [...(owns[i] ?? []), ...places.slice(i * 2, i * 2 + 2)]);
      }
      ids.forEach((locationId, i) => {
        const v = rows[i] ?? [];
        const n = (x: unknown) => Number(x ?? 0);
        const stats = v[7] as Record<string, string>;
        const learned = v[8] as (string | null)[];
        const opt = (x: string | null | undefined) => (x === null || x === undefined ? undefined : Number(x));
        const base = this.#o.budget?.(locationId) ?? { max: 100, windowMs: 10_000, daily: 200_000 };
        out.push({
          locationId,
          waiting: n(v[0]) + n(v[1]) + n(v[2]),
          active: n(v[3]),
          delayed: n(v[4]),
          failed: n(v[5]),
          paused: v[6] !== null,
          hold: parseHold(v[13] as Record<string, string>, now),
          delivered: n(stats.delivered),
          skipped: n(stats.skipped),
          dead: n(stats.dead),
          lookups: { found: n(stats['lookup-found']), absent: n(stats['lookup-absent']), undecided: n(stats['lookup-undecided']) },
          sentInWindow: n(v[9]) + n(v[10]),
          budget: effectiveBudget(base, { max: opt(learned[0]), windowMs: opt(learned[1]), daily: opt(learned[2]) }),
          dailyUsed: n(v[11]),
          blockedUntil: n(v[12]),
          dueAt: v[14] === null ? undefined : Number(v[14]),
          held: v[15] !== null && v[15] !== 'check',
        });
      });
    }
    return out;
  }

  #rate(): RateLimiter {
    if (this.#limiter === undefined) throw new Error('LocationState was built without limiter settings');
    return this.#limiter;
  }

  async #writeHold(locationId: string, hold: LocationHold): Promise<void> {
    const key = this.#keys.state(locationId);
    // Listed as held before the hold is written, so a reader of the set never misses one; the
    // set is another slot than the location's on Redis Cluster, hence outside the transaction.
    await this.#redis.sadd(this.#keys.held, locationId);
    await this.#redis
      .multi()
      .del(key)
      .hset(key, Object.fromEntries(Object.entries(hold).map(([k, v]) => [k, String(v)])))
      .exec();
  }

  async #withQueue(locationId: string, fn: (queue: Queue) => Promise<void>): Promise<void> {
    const queue = new Queue(locationQueueName(locationId), { connection: this.#redis, prefix: this.#o.prefix });
    queue.on('error', () => undefined);
    try {
      await fn(queue);
    } finally {
      await queue.close();
    }
  }

  async #redisNow(): Promise<number> {
    const [seconds, micros] = (await this.#redis.time()) as [number | string, number | string];
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }
}

/** A BullMQ key of a location's queue that exists only while it holds jobs: `loc.{<id>}:<list>`. */
const WORK_KEY = /^:loc\.\{([A-Za-z0-9_-]+)\}:(?:wait|paused|prioritized|delayed|active)$/;

function parseHold(h: Record<string, string>, now = Date.now()): LocationHold | undefined {
  if (h.state === 'paused') return { state: 'paused', reason: h.reason ?? '', since: Number(h.since) };
  if (h.state === 'parked') {
    const until = Number(h.until);
    if (until <= now) return undefined;
    return { state: 'parked', reason: h.reason ?? '', since: Number(h.since), until };
  }
  return undefined;
}
