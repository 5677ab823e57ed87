/**
 * A location's rate budget, owned by the process that holds the location: this module owns its
 * keys (`<prefix>:rate:{<id>}:state` and `:daily`) and its scripts (budget-load, budget-save).
 *
 * A location is held by one process at a time, under its lease in the ready set, so the holder
 * keeps the budget's sliding log in memory (`budget-log.ts`) and decides each request there, at no
 * Redis cost: a message then needs no limiter script at all. The log is loaded when a turn starts,
 * saved when the lease renews and when the turn ends (nothing in flight then), and only by the
 * holder that loaded it last. A new holder after a lapse (its holder died or froze, or Redis lost
 * writes) counts what the lapsed holder may still have had in flight as spent: the location waits
 * until that holder's lease end, plus the longest a request lives, plus one window.
 *
 * Times: the log runs on this process's clock; the saved log on Redis's. Each load reads Redis's
 * `TIME` between two readings of ours, which bounds the offset both ways: a time saved is the
 * latest Redis time it may be, a time loaded the latest local time it may be, so a request is
 * never counted for less than it should be (it may be counted up to one round trip longer).
 */
import { randomUUID } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../connection.ts';
import { keysFor } from '../keys.ts';
import { effectiveBudget, type Budget } from '../rate-budget.ts';
import { defineScripts } from '../scripts.ts';
import { BudgetLog, type BudgetLogOptions, type BudgetView, type Gate, type RateHeaders, type SavedLog, type Take } from './budget-log.ts';

export type { BudgetView, Gate, RateHeaders, Take } from './budget-log.ts';

export interface BudgetSettings extends BudgetLogOptions {
  /** The budget of a location before learning (settings and overrides). */
  budget: (locationId: string) => Budget;
}

/** How long a saved log is kept: what HighLevel's headers taught outlives the window. */
const STATE_TTL_MS = 7 * 86_400_000;

/** This process's clock: epoch ms that never step back (a wall clock set back would free slots early). */
export const processClock = (): number => performance.timeOrigin + performance.now();

/** The budget keys of a location (its hash slot). */
export function budgetKeys(prefix: string, locationId: string): { state: string; daily: string } {
  const base = keysFor(prefix).rate(locationId);
  return { state: `${base}:state`, daily: `${base}:daily` };
}

/** A location's budget while this process holds it. Every method is synchronous: no I/O. */
export class HeldBudget {
  readonly locationId: string;
  readonly #log: BudgetLog;
  readonly #base: () => Budget;
  readonly #now: () => number;
  /** The token this turn holds the budget with (see budget-save.lua). */
  readonly holder: string;
  readonly toRemote: (local: number) => number;
  /**
   * The last holder lapsed (it died or froze, or Redis lost what it wrote since): the location
   * waits for what it may have sent, and jobs it left active are orphans for BullMQ's stalled-job
   * check.
   */
  readonly lapsed: boolean;

  constructor(locationId: string, log: BudgetLog, base: () => Budget, now: () => number, holder: string, toRemote: (local: number) => number, lapsed = false) {
    this.locationId = locationId;
    this.#log = log;
    this.#base = base;
    this.#now = now;
    this.holder = holder;
    this.toRemote = toRemote;
    this.lapsed = lapsed;
  }

  /** Whether backfill is paced now (see BudgetLog.paced): the holder's to decide, turn by turn. */
  set paced(paced: boolean) {
    this.#log.paced = paced;
  }

  take(slot: string, live: boolean): Take {
    return this.#log.take(slot, live, this.#now(), this.#base());
  }

  /** Whether a backfill request taken now would go at once (another job of the location is worth taking). */
  hasRoom(): boolean {
    return this.#log.hasRoom(false, this.#now(), this.#base());
  }

  proceed(slot: string): Gate {
    return this.#log.proceed(slot, this.#now(), this.#base());
  }

  answered(slot: string, rate: RateHeaders | undefined, health: 'up' | 'down' | undefined): number {
    return this.#log.answered(slot, this.#now(), this.#base(), rate, health);
  }

  /** HighLevel refused the request (429) or is down: the location waits; returns how long (ms). */
  refuse(slot: string, waitMs: number | undefined): number {
    return this.#log.refuse(slot, this.#now(), waitMs ?? this.#log.budget(this.#base()).windowMs);
  }

  release(slot: string): void {
    this.#log.release(slot);
  }

  view(): BudgetView {
    return this.#log.view(this.#now(), this.#base());
  }

  /** How long the location must still wait for a 429's or an outage's block (ms, 0: none). */
  blockedFor(): number {
    const now = this.#now();
    const { blockedUntil } = this.#log.view(now, this.#base());
    return blockedUntil > now ? blockedUntil - now : 0;
  }

  saved(): SavedLog {
    return this.#log.save(this.#now(), this.#base(), this.toRemote);
  }
}

/** The worker's side: takes a location's budget for a turn, saves it, and gives it back. */
export class Budgets {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #o: BudgetSettings;
  readonly #runId: () => string | undefined;
  readonly #now: () => number;

  constructor(redis: RedisClient, prefix: string, settings: BudgetSettings, runId: () => string | undefined, now: () => number = processClock) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#o = settings;
    this.#runId = runId;
    this.#now = now;
    defineScripts(redis);
  }

  /** Takes the location's budget for a turn whose lease ends at `leaseEnd` (Redis ms). */
  async hold(locationId: string, leaseEnd: number): Promise<HeldBudget> {
    const k = budgetKeys(this.#prefix, locationId);
    const holder = randomUUID();
    const before = this.#now();
    const r = await this.#redis.ghlBudgetLoad(k.state, k.daily, holder, leaseEnd, this.#runId() ?? '', this.#o.resetOffsetMs, STATE_TTL_MS);
    const after = this.#now();
    const [remoteNow, raw, lapsed, previousEnd, day, used] = [Number(r[0]), String(r[1]), Number(r[2]), Number(r[3]), Number(r[4]), Number(r[5])];
    // Redis read its clock between `before` and `after`.
    const toRemote = (local: number) => Math.ceil(local + (remoteNow - before));
    const toLocal = (remote: number) => Math.ceil(remote - (remoteNow - after));
    const log = BudgetLog.load(raw === '' ? undefined : parseSaved(raw), this.#o, toLocal);
    log.mergeDaily(day, used);
    const base = () => this.#o.budget(locationId);
    if (lapsed === 1) {
      // The lapsed holder may have sent until its lease ended, and those requests count until
      // their answer (at the latest, inflightMs later) plus a window.
      const window = log.budget(base()).windowMs;
      log.blockUntil(toLocal(Math.max(previousEnd, remoteNow) + this.#o.inflightMs + window));
    }
    return new HeldBudget(locationId, log, base, this.#now, holder, toRemote, lapsed === 1);
  }

  /** Saves the log while the turn goes on (the lease renewed until `leaseEnd`). False: another holder has it now. */
  async save(held: HeldBudget, leaseEnd: number): Promise<boolean> {
    return this.#save(held, '1', leaseEnd);
  }

  /** Saves the log at the end of a turn, with nothing in flight. False: another holder has it now. */
  async close(held: HeldBudget): Promise<boolean> {
    return this.#save(held, '0', 0);
  }

  async #save(held: HeldBudget, open: '0' | '1', leaseEnd: number): Promise<boolean> {
    const k = budgetKeys(this.#prefix, held.locationId);
    const saved = held.saved();
    const r = await this.#redis.ghlBudgetSave(
      k.state,
      k.daily,
      held.holder,
      JSON.stringify(saved),
      open,
      leaseEnd,
      this.#runId() ?? '',
      saved.day,
      saved.dailyUsed,
      STATE_TTL_MS,
    );
    return r === 1;
  }
}

function parseSaved(raw: string): SavedLog | undefined {
  try {
    const v = JSON.parse(raw) as Partial<SavedLog>;
    return v.v === 1 && Array.isArray(v.counted) && Array.isArray(v.others) ? (v as SavedLog) : undefined;
  } catch {
    return undefined;
  }
}

/** What `status` and metrics read of a location's budget: queued on a pipeline (2 commands). */
export function readBudget(p: ChainableCommander, prefix: string, locationId: string, day: number): void {
  const k = budgetKeys(prefix, locationId);
  p.hget(k.state, 'log').hget(k.daily, String(day));
}

/** Parses what `readBudget` read: the budget as last saved, at Redis time `now`. */
export function parseBudget(
  replies: readonly unknown[],
  now: number,
  base: Budget,
): { sentInWindow: number; budget: Budget; dailyUsed: number; blockedUntil: number } {
  const saved = typeof replies[0] === 'string' ? parseSaved(replies[0]) : undefined;
  const live = (xs: readonly number[] | undefined) => (xs ?? []).filter((t) => t > now).length;
  const block = saved?.block ?? 0;
  return {
    sentInWindow: live(saved?.counted) + live(saved?.others),
    budget: effectiveBudget(base, saved?.learned ?? {}),
    dailyUsed: Number(replies[1] ?? 0),
    blockedUntil: block > now ? block : 0,
  };
}
