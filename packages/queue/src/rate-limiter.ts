/**
 * The per-location rate limiter, shared by every worker process through Redis. A sliding log:
 * each request holds a slot from its reservation until one window after its answer (HighLevel
 * counted it somewhere between sending and answering, so any rolling window of HighLevel's holds
 * at most the budget, whatever the latency). All times are Redis's own clock.
 *
 * When the window is full, `acquire` reserves the moment a slot frees and says how long to wait,
 * so processes never wake together to fight over one slot. It also checks the delivery ledger, and
 * `settle` writes it: one Redis call before a post and one after, all keys of a location in one
 * hash slot (`{locationId}`), so the scripts run on Redis Cluster too.
 *
 * What HighLevel's headers say is learned: a lower `X-RateLimit-Max` or longer interval is
 * adopted; `X-RateLimit-Remaining` lower than our own count becomes slots of "others" (other apps
 * spending the same location); `X-RateLimit-Daily-Remaining` corrects the day's count.
 */
import type { Redis, Result } from 'ioredis';
import { formatLedgerEntry, parseLedgerEntry, type LedgerEntry } from './ledger.ts';
import { keysFor } from './keys.ts';
import type { Budget } from './rate-budget.ts';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    ghlAcquire(...args: (string | number)[]): Result<[number, string | number, number?], Context>;
    ghlProceed(...args: (string | number)[]): Result<[number, number], Context>;
    ghlSettle(...args: (string | number)[]): Result<number, Context>;
    ghlRefuse(...args: (string | number)[]): Result<number, Context>;
    ghlRelease(...args: (string | number)[]): Result<number, Context>;
  }
}

const DAY_MS = 86_400_000;
/** How long a location remembers HighLevel failing (see `settle`): a quiet spell forgets it. */
const OUTAGE_MEMORY_MS = 10 * 60_000;
/**
 * Expected latency until a location's first answers teach us better (scheduling only). Zero:
 * a job that wakes too early is told by the gate exactly how much longer to wait, while one that
 * was scheduled too late wastes budget that nothing can win back.
 */
const DEFAULT_LATENCY_MS = 0;

/**
 * Shared by the scripts: Redis time in ms, the budget after what HighLevel taught us, and the
 * live count. A location's state: `answered` (score: answer + window), `inflight` (sent, not yet
 * answered; score: sent + inflightMs, so a crashed worker's slot lapses), `reserved` (scheduled,
 * not sent; score: when), `others` (other apps' requests inferred from headers; score: expiry).
 */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function budget(learnedKey, max, window, daily)
  local l = redis.call('HMGET', learnedKey, 'max', 'windowMs', 'daily')
  local lmax, lwin, lday = tonumber(l[1]), tonumber(l[2]), tonumber(l[3])
  if lmax and lmax > 0 and lmax < max then max = lmax end
  if lwin and lwin > window then window = lwin end
  if lday and lday > 0 and lday < daily then daily = lday end
  return max, window, daily
end
local function live(answered, inflight, others)
  redis.call('ZREMRANGEBYSCORE', answered, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', others, '-inf', now)
  return redis.call('ZCARD', answered) + redis.call('ZCARD', inflight) + redis.call('ZCARD', others)
end
-- The k-th moment a counted request is expected to stop counting: answered and others by their
-- scores, in-flight ones at (sent + expected latency + window), reserved ones at (when + latency + window).
local function kthExpiry(k, answered, inflight, others, reserved, inflightMs, latency, window)
  local e = {}
  for _, key in ipairs({answered, others}) do
    local r = redis.call('ZRANGE', key, 0, k - 1, 'WITHSCORES')
    for i = 2, #r, 2 do e[#e + 1] = tonumber(r[i]) end
  end
  local r = redis.call('ZRANGE', inflight, 0, k - 1, 'WITHSCORES')
  for i = 2, #r, 2 do e[#e + 1] = math.max(now, tonumber(r[i]) - inflightMs + latency) + window end
  if reserved then
    r = redis.call('ZRANGE', reserved, 0, k - 1, 'WITHSCORES')
    for i = 2, #r, 2 do e[#e + 1] = tonumber(r[i]) + latency + window end
  end
  table.sort(e)
  return e[k]
end
`;

/**
 * KEYS: answered, inflight, reserved, others, block, daily, learned, ledger, probe
 * ARGV: slotId, max, windowMs, daily, inflightMs, resetOffsetMs, horizonMs, defaultLatencyMs
 * → {1, ledgerValue} already delivered | {2, waitMs} wait | {3, waitMs, parkedUntil} daily budget spent
 *   | {0, 0} sent now (in flight) | {0, sendInMs} reserved: call proceed after sendInMs
 */
const ACQUIRE = `${PRELUDE}
local done = redis.call('GET', KEYS[8])
if done then return {1, done} end
local blocked = tonumber(redis.call('GET', KEYS[5]) or '0')
if blocked > now then return {2, blocked - now} end
local max, window, daily = budget(KEYS[7], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local offset = tonumber(ARGV[6])
local day = math.floor((now - offset) / ${DAY_MS})
local used = tonumber(redis.call('HGET', KEYS[6], tostring(day)) or '0')
if used >= daily then
  local parkedUntil = (day + 1) * ${DAY_MS} + offset
  return {3, parkedUntil - now, parkedUntil}
end
local inflightMs = tonumber(ARGV[5])
-- After a 429, one request goes first and the rest wait for its answer's headers.
local probe = redis.call('GET', KEYS[9])
if probe and probe ~= '1' then return {2, 50} end
local counted = live(KEYS[1], KEYS[2], KEYS[4])
if probe and counted < max then
  redis.call('SET', KEYS[9], ARGV[1], 'PX', inflightMs)
end
-- Reservations nobody used (their worker died) lapse after a while.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - inflightMs - window)
local waiting = redis.call('ZCARD', KEYS[3])
local sendAt = now
if counted + waiting >= max then
  local latency = tonumber(redis.call('HGET', KEYS[7], 'latency') or ARGV[8])
  sendAt = math.max(now + 1, kthExpiry(counted + waiting - max + 1, KEYS[1], KEYS[2], KEYS[4], KEYS[3], inflightMs, latency, window))
  if sendAt - now > tonumber(ARGV[7]) then return {2, sendAt - now} end
  redis.call('ZADD', KEYS[3], sendAt, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], sendAt - now + inflightMs + window + 60000)
else
  redis.call('ZADD', KEYS[2], now + inflightMs, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], inflightMs + 60000)
end
redis.call('HINCRBY', KEYS[6], tostring(day), 1)
if redis.call('HLEN', KEYS[6]) > 2 then
  for _, f in ipairs(redis.call('HKEYS', KEYS[6])) do
    if tonumber(f) < day - 1 then redis.call('HDEL', KEYS[6], f) end
  end
end
redis.call('PEXPIRE', KEYS[6], 3 * ${DAY_MS})
return {0, sendAt - now}
`;

/**
 * The gate a reserved request passes before it is sent: only while fewer than max requests count,
 * and not while a probe after a 429 awaits its answer.
 * KEYS: answered, inflight, reserved, others, block, learned, probe
 * ARGV: slotId, max, windowMs, daily, inflightMs, defaultLatencyMs
 * → {0, 0} sent now (in flight) | {1, waitMs} not yet: call again after waitMs | {2, waitMs} the location waits (slot given back)
 */
const PROCEED = `${PRELUDE}
local blocked = tonumber(redis.call('GET', KEYS[5]) or '0')
if blocked > now then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {2, blocked - now}
end
local max, window = budget(KEYS[6], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local inflightMs = tonumber(ARGV[5])
local probe = redis.call('GET', KEYS[7])
if probe and probe ~= '1' and probe ~= ARGV[1] then
  redis.call('ZADD', KEYS[3], now + 50, ARGV[1])
  return {1, 50}
end
if live(KEYS[1], KEYS[2], KEYS[4]) < max then
  if probe == '1' then redis.call('SET', KEYS[7], ARGV[1], 'PX', inflightMs) end
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[2], now + inflightMs, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], inflightMs + 60000)
  return {0, 0}
end
-- Not yet: come back when this request's turn is expected, by its rank among the reservations,
-- so that waiting requests do not all wake for the same freed slot.
local latency = tonumber(redis.call('HGET', KEYS[6], 'latency') or ARGV[6])
local counted = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[4])
local mine = redis.call('ZSCORE', KEYS[3], ARGV[1])
local ahead = mine and redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. mine) or 0
local k = counted - max + 1 + ahead
local turn = kthExpiry(k, KEYS[1], KEYS[2], KEYS[4], KEYS[3], inflightMs, latency, window)
local waitMs = math.max(1, (turn or now) - now)
redis.call('ZADD', KEYS[3], now + waitMs, ARGV[1])
return {1, waitMs}
`;

/**
 * An answer came (or the request failed without one): the request counts until one window from now.
 * KEYS: answered, inflight, others, learned, daily, ledger, probe, outage
 * ARGV: slotId, max, windowMs, daily, resetOffsetMs, remaining, headerMax, headerInterval,
 *       dailyRemaining, headerDaily, ledgerValue, ledgerTtlMs, inflightMs, health   ('' where absent)
 * → the location's consecutive failures of HighLevel itself (health 'down'), 0 after an 'up'
 */
const SETTLE = `${PRELUDE}
if ARGV[11] ~= '' then redis.call('SET', KEYS[6], ARGV[11], 'PX', tonumber(ARGV[12])) end
local failures = 0
if ARGV[14] == 'up' then
  redis.call('DEL', KEYS[8])
elseif ARGV[14] == 'down' then
  failures = redis.call('INCR', KEYS[8])
  redis.call('PEXPIRE', KEYS[8], ${OUTAGE_MEMORY_MS})
end
if redis.call('GET', KEYS[7]) == ARGV[1] then redis.call('DEL', KEYS[7]) end
local hmax, hint, hday = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local cmax, cwin, cday = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- What the headers teach is written only when it changes: this runs after every answer.
local l = redis.call('HMGET', KEYS[4], 'max', 'windowMs', 'daily', 'latency')
local function learn(field, value, stored)
  if value == stored then return end
  if value then redis.call('HSET', KEYS[4], field, value) else redis.call('HDEL', KEYS[4], field) end
end
if hmax then learn('max', hmax < cmax and hmax or nil, tonumber(l[1])) end
if hint then learn('windowMs', hint > cwin and hint or nil, tonumber(l[2])) end
if hday then learn('daily', hday < cday and hday or nil, tonumber(l[3])) end
local max, window, daily = budget(KEYS[4], cmax, cwin, cday)
local sentScore = redis.call('ZSCORE', KEYS[2], ARGV[1])
if sentScore then
  redis.call('ZREM', KEYS[2], ARGV[1])
  -- Expected latency, for scheduling only (safety never depends on it): a moving average.
  local took = now - (tonumber(sentScore) - tonumber(ARGV[13]))
  local old = tonumber(l[4]) or took
  redis.call('HSET', KEYS[4], 'latency', math.floor(old * 0.8 + took * 0.2))
end
redis.call('PEXPIRE', KEYS[4], 7 * ${DAY_MS})
redis.call('ZADD', KEYS[1], now + window, ARGV[1])
redis.call('PEXPIRE', KEYS[1], window + 60000)
local remaining = tonumber(ARGV[6])
if remaining then
  -- What HighLevel counts beyond ours, others spent. Ours: answered and still in the window, and
  -- in flight (sent with this one, they have mostly reached it). Once others show up, the location
  -- is shared for ten windows, and only answered ones count as ours: slower to use the budget,
  -- but a rival's spending is not mistaken for our requests in flight.
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local answered, inflight = redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])
  local others = (max - remaining) - answered - inflight
  if others > 0 then redis.call('HSET', KEYS[4], 'sharedUntil', now + 10 * window) end
  if tonumber(redis.call('HGET', KEYS[4], 'sharedUntil') or '0') > now then
    others = (max - remaining) - answered
  end
  local have = redis.call('ZCARD', KEYS[3])
  for i = have + 1, others do
    redis.call('ZADD', KEYS[3], now + window, ARGV[1] .. ':x' .. i)
  end
  if others > have then redis.call('PEXPIRE', KEYS[3], window + 60000) end
end
local dayRemaining = tonumber(ARGV[9])
if dayRemaining then
  local day = tostring(math.floor((now - tonumber(ARGV[5])) / ${DAY_MS}))
  local used = math.max(0, daily - dayRemaining)
  if tonumber(redis.call('HGET', KEYS[5], day) or '-1') ~= used then redis.call('HSET', KEYS[5], day, used) end
end
return failures
`;

/**
 * HighLevel answered 429: that request did not count, and the location waits in every process.
 * Then one request probes first (see ACQUIRE): our view of the window was wrong, others spend it.
 * KEYS: inflight, block, probe  ARGV: slotId, waitMs → the wait in ms
 */
const REFUSE = `${PRELUDE}
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], '1', 'PX', tonumber(ARGV[2]) * 3 + 60000)
local untilMs = now + tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if untilMs > current then
  redis.call('SET', KEYS[2], untilMs, 'PX', tonumber(ARGV[2]) + 1000)
  return untilMs - now
end
return current - now
`;

/**
 * A reservation not used (the worker stopped before sending): give back the slot and the day's count.
 * KEYS: reserved, inflight, daily, probe  ARGV: slotId, resetOffsetMs
 */
const RELEASE = `${PRELUDE}
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('SET', KEYS[4], '1', 'KEEPTTL') end
if redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1]) > 0 then
  local day = math.floor((now - tonumber(ARGV[2])) / ${DAY_MS})
  if tonumber(redis.call('HGET', KEYS[3], tostring(day)) or '0') > 0 then
    redis.call('HINCRBY', KEYS[3], tostring(day), -1)
  end
end
return 1
`;

export type Acquired =
  | { kind: 'delivered'; entry: LedgerEntry }
  /** `sendInMs` 0: in flight now, send at once. Otherwise call `proceed` after that long. */
  | { kind: 'reserved'; slot: string; sendInMs: number }
  | { kind: 'wait'; waitMs: number }
  | { kind: 'parked'; waitMs: number; until: number };

/** What the `X-RateLimit-*` headers of an answer said. */
export interface RateHeaders {
  max?: number;
  remaining?: number;
  intervalMs?: number;
  daily?: number;
  dailyRemaining?: number;
}

export interface RateLimiterOptions {
  prefix: string;
  /** The budget of a location (settings and overrides). */
  budget: (locationId: string) => Budget;
  /** How long a request may take: a reserved slot counts at least this long (HTTP timeout). */
  inflightMs: number;
  /** GHL_DAILY_RESET as ms after midnight UTC. */
  resetOffsetMs: number;
  /** How far ahead a slot may be reserved; further, and the location waits instead. Default 2 windows. */
  horizonMs?: (budget: Budget) => number;
  /** How long delivery-ledger entries live. */
  ledgerTtlMs: number;
}

export class RateLimiter {
  #redis: Redis;
  #o: RateLimiterOptions;

  constructor(redis: Redis, options: RateLimiterOptions) {
    this.#redis = redis;
    this.#o = options;
    if (typeof (redis as Partial<Redis>).ghlAcquire !== 'function') {
      redis.defineCommand('ghlAcquire', { numberOfKeys: 9, lua: ACQUIRE });
      redis.defineCommand('ghlProceed', { numberOfKeys: 7, lua: PROCEED });
      redis.defineCommand('ghlSettle', { numberOfKeys: 8, lua: SETTLE });
      redis.defineCommand('ghlRefuse', { numberOfKeys: 3, lua: REFUSE });
      redis.defineCommand('ghlRelease', { numberOfKeys: 4, lua: RELEASE });
    }
  }

  /** Checks the ledger for `key`, then reserves a slot for `slot` (a unique id) or says how long to wait. */
  async acquire(locationId: string, key: string, slot: string): Promise<Acquired> {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const horizon = this.#o.horizonMs?.(b) ?? 2 * b.windowMs;
    const r = await this.#redis.ghlAcquire(
      k.answered, k.inflight, k.reserved, k.others, k.block, k.daily, k.learned, keysFor(this.#o.prefix).ledger(locationId, key), k.probe,
      slot, b.max, b.windowMs, b.daily, this.#o.inflightMs, this.#o.resetOffsetMs, horizon, DEFAULT_LATENCY_MS,
    );
    switch (r[0]) {
      case 1:
        return { kind: 'delivered', entry: parseLedgerEntry(String(r[1])) };
      case 0:
        return { kind: 'reserved', slot, sendInMs: Number(r[1]) };
      case 3:
        return { kind: 'parked', waitMs: Number(r[1]), until: Number(r[2]) };
      default:
        return { kind: 'wait', waitMs: Number(r[1]) };
    }
  }

  /**
   * The gate of a reserved request, when its time comes: `go`, or `later` (call again after
   * `waitMs`: the window is still full), or `wait` (the location waits; the slot was given back).
   */
  async proceed(locationId: string, slot: string): Promise<{ kind: 'go' } | { kind: 'later' | 'wait'; waitMs: number }> {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const [code, waitMs] = await this.#redis.ghlProceed(
      k.answered, k.inflight, k.reserved, k.others, k.block, k.learned, k.probe,
      slot, b.max, b.windowMs, b.daily, this.#o.inflightMs, DEFAULT_LATENCY_MS,
    );
    if (code === 0) return { kind: 'go' };
    return { kind: code === 1 ? 'later' : 'wait', waitMs };
  }

  /**
   * The answer of a slot's request (or its failure): learns from the headers, writes the ledger
   * when delivered, and keeps count of HighLevel's own failures in a row at this location: `down`
   * (unreachable, 502/503/504, timeout) adds one and returns the count, `up` (it answered for
   * itself) forgets them. Returns the count, 0 when not `down`.
   */
  async settle(
    locationId: string,
    key: string,
    slot: string,
    rate: RateHeaders | undefined,
    delivered?: LedgerEntry,
    health?: 'up' | 'down',
  ): Promise<number> {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const v = (n: number | undefined) => (n === undefined ? '' : n);
    return this.#redis.ghlSettle(
      k.answered, k.inflight, k.others, k.learned, k.daily, keysFor(this.#o.prefix).ledger(locationId, key), k.probe, k.outage,
      slot, b.max, b.windowMs, b.daily, this.#o.resetOffsetMs,
      v(rate?.remaining), v(rate?.max), v(rate?.intervalMs), v(rate?.dailyRemaining), v(rate?.daily),
      delivered === undefined ? '' : formatLedgerEntry(delivered), this.#o.ledgerTtlMs, this.#o.inflightMs, health ?? '',
    );
  }

  /**
   * HighLevel answered 429 (or is down): the slot is given back and the location waits in every
   * process `retryAfterMs`, else one window; then one request probes before the rest go.
   */
  async refuse(locationId: string, slot: string, retryAfterMs: number | undefined): Promise<number> {
    const k = this.#keys(locationId);
    const wait = retryAfterMs ?? this.#o.budget(locationId).windowMs;
    return this.#redis.ghlRefuse(k.inflight, k.block, k.probe, slot, Math.max(1, Math.ceil(wait)));
  }

  /** Gives back a reservation that was not used. */
  async release(locationId: string, slot: string): Promise<void> {
    const k = this.#keys(locationId);
    await this.#redis.ghlRelease(k.reserved, k.inflight, k.daily, k.probe, slot, this.#o.resetOffsetMs);
  }

  #keys(locationId: string) {
    return rateKeys(this.#o.prefix, locationId);
  }
}

/** The limiter's keys of a location (all in its hash slot). */
export function rateKeys(prefix: string, locationId: string) {
  const base = keysFor(prefix).rate(locationId);
  return {
    answered: `${base}:answered`,
    inflight: `${base}:inflight`,
    reserved: `${base}:reserved`,
    others: `${base}:others`,
    block: `${base}:block`,
    probe: `${base}:probe`,
    outage: `${base}:outage`,
    daily: `${base}:daily`,
    learned: `${base}:learned`,
  };
}
