/**
 * A location's rate budget as its holder keeps it: a sliding log in memory, no I/O. A location is
 * held by one process at a time (its lease in the ready set), so the process that holds it is the
 * only one that spends its budget, and can decide each request here, synchronously, at no Redis
 * cost. `budget.ts` loads the log when a turn starts, saves it when the turn ends and when the
 * lease renews, and counts a lapsed holder's unknown requests as spent.
 *
 * Safety: a request counts from the moment it is sent until one window after its answer. HighLevel
 * counted it somewhere between those two moments, so no rolling window of HighLevel's holds more
 * than `max` of ours, whatever the latency. Requests other apps made (learned from
 * `X-RateLimit-Remaining`) count for one window.
 *
 * Throughput: a request reserves a slot (`take`): now when one is free, else the moment one is
 * expected to free (the k-th earliest expected expiry, counting the reservations ranked ahead of
 * it). It counts only once it passes the gate (`proceed`), right before it is sent: a request
 * that waits for a place in flight holds no slot meanwhile, so none is spent waiting. Live
 * messages rank ahead of every backfill reservation, and among themselves in the order they
 * asked: a live message takes the next slot that frees.
 *
 * Backfill is paced: one request per `window / max` on average, at most PACE_BURST together, so a
 * location's slots free a few at a time rather than all at once a window after a burst. The budget used is the same (the log's own
 * limit binds first: each slot counts for a window and a latency), but a live message then finds
 * a slot within one slot interval however busy its location is, and the worker's requests (and
 * HighLevel's answers) come evenly instead of in bursts that a busy host answers late.
 *
 * All times are this process's clock (ms); `budget.ts` converts to and from Redis's clock.
 */
import { dayIndex, effectiveBudget, nextReset, type Budget } from '../rate-budget.ts';

/** What the `X-RateLimit-*` headers of an answer said. */
export interface RateHeaders {
  max?: number;
  remaining?: number;
  intervalMs?: number;
  daily?: number;
  dailyRemaining?: number;
}

export type Take =
  /** A slot is free now: reserved; pass `proceed` right before sending. */
  | { kind: 'go' }
  /** Reserved for later: pass `proceed` after `sendInMs`. */
  | { kind: 'reserved'; sendInMs: number }
  /** The location waits (a 429's or an outage's block, a probe in flight, a slot past the horizon). */
  | { kind: 'wait'; waitMs: number }
  /** The daily budget is spent until `until`. */
  | { kind: 'parked'; waitMs: number; until: number };

/** A reserved request's gate: `go`; `later` (the window is still full: again after `waitMs`); `wait` (the location waits; the reservation is gone). */
export type Gate = { kind: 'go' } | { kind: 'later'; waitMs: number } | { kind: 'wait'; waitMs: number };

/** What a held log says of itself (`status`, metrics). */
export interface BudgetView {
  /** Requests counted now: answered within a window, in flight, and others'. */
  counted: number;
  budget: Budget;
  dailyUsed: number;
  /** A 429's or an outage's block, 0 if none. */
  blockedUntil: number;
}

/** The log as it is saved between turns: times in Redis's clock (see budget.ts). */
export interface SavedLog {
  v: 1;
  /** When each request of ours stops counting (answered: answer + window; in flight: its latest). */
  counted: number[];
  /** When each request of other apps stops counting. */
  others: number[];
  block: number;
  /** The next request probes first (after a 429 or an outage). */
  probe: boolean;
  /** HighLevel's own failures in a row at this location. */
  outage: number;
  learned: { max?: number; windowMs?: number; daily?: number };
  latency?: number;
  /** Until then, requests others made are inferred from answered ones only (see `answered`). */
  sharedUntil: number;
  day: number;
  dailyUsed: number;
}

export interface BudgetLogOptions {
  /** A request's longest life (HTTP timeout and a margin): how long one in flight may still be counted. */
  inflightMs: number;
  /** A slot further ahead than this is not reserved: the location waits instead (`wait`). Default: two windows. */
  horizonMs?: (budget: Budget) => number;
  /** GHL_DAILY_RESET as ms after midnight UTC. */
  resetOffsetMs: number;
  /** Backfill paced to one request per window / max (see above), to begin with (see `paced`). Default true. */
  pace?: boolean;
}

/**
 * How many backfill requests the pace lets go together (see `take`). A trade between the budget
 * used when answers jitter and a live message's wait for the next slot that frees (slots free as
 * the pace sent them): at 100 per 10 s, with 3 the live p99 read 354 and 367 ms; with 2, 268 and
 * 274 ms, the budget used the same (0.994 at HighLevel's limits, 0.974 at 20 per 2 s); with 1,
 * 215 ms but 0.93 at 20 per 2 s (docs/design.md).
 */
const PACE_BURST = 2;

/** How long a request waits while the probe after a 429 is in flight (ms). */
const PROBE_WAIT_MS = 50;

interface Reservation {
  at: number;
  live: boolean;
  /** Order of asking, among reservations of the same rank. */
  seq: number;
  /** A paced one: the pace before and after it (given back with it while none came after). */
  pace?: { before: number; after: number };
}

export class BudgetLog {
  readonly #o: BudgetLogOptions;
  /**
   * Expiries of answered requests (answer + window), ascending; kept a request's life past their
   * expiry, because what HighLevel's headers count was counted when the request arrived (see
   * `answered`).
   */
  #answered = new Expiries();
  /** Slot -> when it was sent. */
  readonly #inflight = new Map<string, number>();
  readonly #reserved = new Map<string, Reservation>();
  #seq = 0;
  /** Expiries of other apps' requests, ascending. */
  #others = new Expiries();
  #block = 0;
  /** 'none'; 'due': the next request probes; else the slot of the probe in flight. */
  #probe: string = 'none';
  #outage = 0;
  #learned: SavedLog['learned'] = {};
  #latency: number | undefined;
  #sharedUntil = 0;
  #day = -1;
  #dailyUsed = 0;
  /** The pace's theoretical arrival time (GCRA): the next backfill request goes no earlier than this, less the burst it may catch up. */
  #tat = -Infinity;

  /**
   * Whether backfill is paced now. Its holder paces while it keeps the location for as long as
   * it likes; while other locations wait for a turn, it sends what the budget allows during its
   * turn instead (the budget left unused while it waited in line is then not lost to the pace).
   */
  paced: boolean;

  constructor(options: BudgetLogOptions) {
    this.#o = options;
    this.paced = options.pace !== false;
  }

  /** The budget in force: the settings' (`base`), lowered by what HighLevel's headers said. */
  budget(base: Budget): Budget {
    return effectiveBudget(base, this.#learned);
  }

  view(now: number, base: Budget): BudgetView {
    this.#trim(now);
    this.#rollDay(now);
    return { counted: this.#counted(now), budget: this.budget(base), dailyUsed: this.#dailyUsed, blockedUntil: this.#block > now ? this.#block : 0 };
  }

  /** A slot for `slot` (a unique id): now, later, or not until the location's wait ends. */
  take(slot: string, live: boolean, now: number, base: Budget): Take {
    this.#trim(now);
    this.#rollDay(now);
    const b = this.budget(base);
    if (this.#block > now) return { kind: 'wait', waitMs: this.#block - now };
    if (this.#dailyUsed >= b.daily) {
      const until = nextReset(now, this.#o.resetOffsetMs);
      return { kind: 'parked', waitMs: until - now, until };
    }
    // After a 429 or an outage, one request goes first and the rest wait for its answer's headers.
    if (this.#probe !== 'none' && this.#probe !== 'due') return { kind: 'wait', waitMs: PROBE_WAIT_MS };
    const counted = this.#counted(now);
    let sendAt = now;
    // Far from the limit (the usual case with a large budget), no reservation can be in the way.
    if (counted + this.#reserved.size >= b.max) {
      const ahead = this.#aheadOf(live, undefined);
      if (counted + ahead.length >= b.max) sendAt = Math.max(now + 1, this.#kthExpiry(counted + ahead.length - b.max + 1, ahead, now, b.windowMs));
    }
    const paced = !live && this.paced;
    // The pace may fall between milliseconds (a budget of thousands a second): kept exact, so
    // that rounding never slows the pace itself.
    const gap = b.windowMs / b.max;
    if (paced) sendAt = Math.max(sendAt, this.#tat - (PACE_BURST - 1) * gap);
    if (sendAt - now > (this.#o.horizonMs?.(b) ?? 2 * b.windowMs)) return { kind: 'wait', waitMs: Math.ceil(sendAt - now) };
    // The pace lets PACE_BURST requests go together (GCRA): a slot that freed early (its answer
    // came fast) may catch up on one that freed late, so the answers' jitter is not lost to the
    // pace, and the spacing still averages one interval.
    const before = this.#tat;
    if (paced) this.#tat = Math.max(this.#tat, sendAt) + gap;
    this.#dailyUsed += 1;
    this.#reserved.set(slot, { at: sendAt, live, seq: (this.#seq += 1), ...(paced ? { pace: { before, after: this.#tat } } : {}) });
    return sendAt - now >= 1 ? { kind: 'reserved', sendInMs: Math.ceil(sendAt - now) } : { kind: 'go' };
  }

  /**
   * Whether a request taken now would go within about one request's latency: another job of the
   * location is worth taking (one taken to wait longer would only hold a job and a place).
   */
  hasRoom(live: boolean, now: number, base: Budget): boolean {
    this.#trim(now);
    const b = this.budget(base);
    if (this.#block > now || (this.#probe !== 'none' && this.#probe !== 'due')) return false;
    if (!live && this.paced && this.#tat - (PACE_BURST - 1) * (b.windowMs / b.max) > now + Math.max(1, this.#latency ?? 0)) return false;
    const counted = this.#counted(now);
    return counted + this.#reserved.size < b.max || counted + this.#aheadOf(live, undefined).length < b.max;
  }

  /** The gate of a reserved request, right before it is sent: `go` counts it from now. */
  proceed(slot: string, now: number, base: Budget): Gate {
    const mine = this.#reserved.get(slot);
    if (mine === undefined) return { kind: 'wait', waitMs: 0 };
    this.#trim(now);
    const b = this.budget(base);
    if (this.#block > now) {
      this.#giveBack(slot);
      return { kind: 'wait', waitMs: this.#block - now };
    }
    if (this.#probe !== 'none' && this.#probe !== 'due') return this.#later(slot, mine, now, PROBE_WAIT_MS);
    const counted = this.#counted(now);
    const ahead = counted + this.#reserved.size - 1 < b.max ? [] : this.#aheadOf(mine.live, mine);
    // Free slots go to the reservations ranked ahead first (live ones, then the earlier asked).
    if (counted + ahead.length < b.max) {
      this.#reserved.delete(slot);
      this.#send(slot, now);
      return { kind: 'go' };
    }
    const turn = this.#kthExpiry(counted + ahead.length - b.max + 1, ahead, now, b.windowMs);
    return this.#later(slot, mine, now, Math.max(1, turn - now));
  }

  /**
   * The answer of a slot's request, or its failure without one: it counts until one window from
   * now. Learns from the headers; keeps count of HighLevel's own failures in a row (`down` adds one
   * unless the location already waits for them, `up` clears them). Returns that count.
   */
  answered(slot: string, now: number, base: Budget, rate: RateHeaders | undefined, health: 'up' | 'down' | undefined): number {
    let failures = 0;
    if (health === 'up') this.#outage = 0;
    else if (health === 'down') {
      // One that fails while the location already waits was in flight when the wait began.
      if (this.#block <= now) this.#outage += 1;
      failures = this.#outage;
    }
    if (this.#probe === slot) this.#probe = health === 'down' ? 'due' : 'none';
    const configured = base;
    if (rate?.max !== undefined) this.#learned.max = rate.max < configured.max ? rate.max : undefined;
    if (rate?.intervalMs !== undefined) this.#learned.windowMs = rate.intervalMs > configured.windowMs ? rate.intervalMs : undefined;
    if (rate?.daily !== undefined) this.#learned.daily = rate.daily < configured.daily ? rate.daily : undefined;
    const b = this.budget(base);
    const sent = this.#inflight.get(slot);
    // HighLevel's X-RateLimit-Remaining counted when this request arrived, after it was sent.
    const countedSince = sent ?? now - (this.#latency ?? 0);
    if (sent !== undefined) {
      this.#inflight.delete(slot);
      // Expected latency, for scheduling only (safety never depends on it): a moving average.
      const took = now - sent;
      this.#latency = Math.floor((this.#latency ?? took) * 0.8 + took * 0.2);
    }
    this.#answered.add(now + b.windowMs);
    this.#trim(now);
    if (rate?.remaining !== undefined) {
      // What HighLevel counts beyond ours, others spent. Ours: every request HighLevel may have
      // counted when this one arrived, which is every one still counting when it was sent (one
      // that stopped counting since, while this one was on its way, was still in HighLevel's
      // count: compared with ours now, it read as another app's, and cost 4 % of the budget at
      // 20 per 2 s). Once others show up, the location is shared for ten windows, and only
      // answered requests count as ours: slower to use the budget, but a rival's spending is not
      // mistaken for our requests in flight.
      const ours = this.#answered.countAfter(countedSince);
      let others = b.max - rate.remaining - ours - this.#inflight.size;
      if (others > 0) this.#sharedUntil = now + 10 * b.windowMs;
      if (this.#sharedUntil > now) others = b.max - rate.remaining - ours;
      for (let have = this.#others.size; have < others; have += 1) this.#others.add(now + b.windowMs);
    }
    if (rate?.dailyRemaining !== undefined) {
      // The day's count rises to what HighLevel counted of its own daily limit (another app spent
      // some of it), and never falls: our requests still in flight are not in its count yet.
      this.#rollDay(now);
      this.#dailyUsed = Math.max(this.#dailyUsed, (rate.daily ?? b.daily) - rate.dailyRemaining);
    }
    return failures;
  }

  /**
   * HighLevel refused the request (429), or is down: it did not count, the location waits
   * `waitMs` (a longer wait already set wins), and then one request probes first. Returns the wait.
   */
  refuse(slot: string, now: number, waitMs: number): number {
    this.#inflight.delete(slot);
    this.#probe = 'due';
    this.#block = Math.max(this.#block, now + Math.max(1, Math.ceil(waitMs)));
    return this.#block - now;
  }

  /** A slot not used (the worker stops, or the location waits before sending): given back with its day's count. */
  release(slot: string): void {
    if (this.#probe === slot) this.#probe = 'due';
    // The pace's last step given back too: the next backfill request takes its place in the pace.
    const pace = this.#reserved.get(slot)?.pace;
    if (pace !== undefined && this.#tat === pace.after) this.#tat = pace.before;
    if (this.#giveBack(slot) && this.#dailyUsed > 0) this.#dailyUsed -= 1;
  }

  /** Blocks the location until `until` (a lapsed holder's requests may still count until then). */
  blockUntil(until: number): void {
    this.#block = Math.max(this.#block, until);
  }

  /**
   * The log to save, in Redis's clock (`toRemote`: a time of this process's to the latest Redis
   * time it may be). Requests in flight count as long as they may: sent + inflightMs + window.
   * Reservations are not saved: they are this process's own waits.
   */
  save(now: number, base: Budget, toRemote: (local: number) => number): SavedLog {
    this.#trim(now);
    this.#rollDay(now);
    const window = this.budget(base).windowMs;
    const counted = [...this.#answered.valuesAfter(now), ...[...this.#inflight.values()].map((sent) => sent + this.#o.inflightMs + window)].sort(
      (a, b) => a - b,
    );
    return {
      v: 1,
      counted: counted.map(toRemote),
      others: this.#others.values().map(toRemote),
      block: this.#block > now ? toRemote(this.#block) : 0,
      probe: this.#probe !== 'none',
      outage: this.#outage,
      learned: { ...this.#learned },
      ...(this.#latency === undefined ? {} : { latency: this.#latency }),
      sharedUntil: this.#sharedUntil > now ? toRemote(this.#sharedUntil) : 0,
      day: this.#day,
      dailyUsed: this.#dailyUsed,
    };
  }

  /** A log saved by the previous holder (`toLocal`: a Redis time to the latest time of this process's it may be). */
  static load(saved: SavedLog | undefined, options: BudgetLogOptions, toLocal: (remote: number) => number): BudgetLog {
    const log = new BudgetLog(options);
    if (saved === undefined) return log;
    log.#answered = Expiries.of(saved.counted.map(toLocal));
    log.#others = Expiries.of(saved.others.map(toLocal));
    log.#block = saved.block > 0 ? toLocal(saved.block) : 0;
    log.#probe = saved.probe ? 'due' : 'none';
    log.#outage = saved.outage;
    log.#learned = { ...saved.learned };
    log.#latency = saved.latency;
    log.#sharedUntil = saved.sharedUntil > 0 ? toLocal(saved.sharedUntil) : 0;
    log.#day = saved.day;
    log.#dailyUsed = saved.dailyUsed;
    return log;
  }

  /** The day's count as the shared daily hash holds it (the larger wins: another process may have counted more). */
  mergeDaily(day: number, used: number): void {
    if (day === this.#day) this.#dailyUsed = Math.max(this.#dailyUsed, used);
    else if (day > this.#day) {
      this.#day = day;
      this.#dailyUsed = used;
    }
  }

  #send(slot: string, now: number): void {
    this.#inflight.set(slot, now);
    if (this.#probe === 'due') this.#probe = slot;
  }

  #later(slot: string, mine: Reservation, now: number, waitMs: number): Gate {
    mine.at = now + waitMs;
    this.#reserved.set(slot, mine);
    return { kind: 'later', waitMs };
  }

  #giveBack(slot: string): boolean {
    return this.#reserved.delete(slot) || this.#inflight.delete(slot);
  }

  #counted(now: number): number {
    return this.#answered.countAfter(now) + this.#inflight.size + this.#others.size;
  }

  /** Reservations ranked ahead of one (live ones before backfill; then in order of asking). */
  #aheadOf(live: boolean, mine: Reservation | undefined): Reservation[] {
    const out: Reservation[] = [];
    for (const r of this.#reserved.values()) {
      if (r === mine) continue;
      if (live && !r.live) continue;
      if (mine !== undefined && r.live === mine.live && r.seq > mine.seq) continue;
      out.push(r);
    }
    return out;
  }

  /**
   * The k-th moment a counted request is expected to stop counting: answered and others' at their
   * expiry, in-flight ones at (sent + expected latency + window), and the reservations ahead at
   * (when + latency + window).
   */
  #kthExpiry(k: number, ahead: readonly Reservation[], now: number, window: number): number {
    const latency = this.#latency ?? 0;
    const e = [...this.#answered.valuesAfter(now), ...this.#others.values()];
    for (const sent of this.#inflight.values()) e.push(Math.max(now, sent + latency) + window);
    for (const r of ahead) e.push(r.at + latency + window);
    e.sort((a, b) => a - b);
    return e[Math.min(e.length, k) - 1] ?? now;
  }

  #trim(now: number): void {
    this.#answered.dropUntil(now - this.#o.inflightMs);
    this.#others.dropUntil(now);
  }

  #rollDay(now: number): void {
    const day = dayIndex(now, this.#o.resetOffsetMs);
    if (day > this.#day) {
      this.#day = day;
      this.#dailyUsed = 0;
    }
  }
}

/**
 * Expiry times, ascending, dropped from the front as they pass: an array and the index of its
 * first live entry, compacted now and then, so that dropping is O(1) however many a window holds.
 */
class Expiries {
  #xs: number[] = [];
  #head = 0;

  static of(times: number[]): Expiries {
    const e = new Expiries();
    e.#xs = times.sort((a, b) => a - b);
    return e;
  }

  get size(): number {
    return this.#xs.length - this.#head;
  }

  add(x: number): void {
    const xs = this.#xs;
    let i = xs.length;
    while (i > this.#head && (xs[i - 1] as number) > x) i -= 1;
    if (i === xs.length) xs.push(x);
    else xs.splice(i, 0, x);
  }

  dropUntil(now: number): void {
    const xs = this.#xs;
    while (this.#head < xs.length && (xs[this.#head] as number) <= now) this.#head += 1;
    if (this.#head > 1_024 && this.#head * 2 > xs.length) {
      this.#xs = xs.slice(this.#head);
      this.#head = 0;
    }
  }

  values(): number[] {
    return this.#xs.slice(this.#head);
  }

  /** How many are later than `t` (a binary search). */
  countAfter(t: number): number {
    return this.#xs.length - this.#firstAfter(t);
  }

  valuesAfter(t: number): number[] {
    return this.#xs.slice(this.#firstAfter(t));
  }

  #firstAfter(t: number): number {
    let lo = this.#head;
    let hi = this.#xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#xs[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
