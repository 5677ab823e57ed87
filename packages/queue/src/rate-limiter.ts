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
import { formatLedgerEntry, type LedgerEntry } from './ledger.ts';
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

/** Shared by the scripts: Redis time in ms, and the budget after what HighLevel taught us. */
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
`;

/**
 * KEYS: slots, others, block, daily, learned, ledger
 * ARGV: slotId, max, windowMs, daily, inflightMs, resetOffsetMs, horizonMs
 * → {1, ledgerValue} already delivered | {2, waitMs} wait | {3, waitMs, parkedUntil} daily budget spent
 *   | {0, sendInMs} reserved: send after sendInMs
 */
const ACQUIRE = `${PRELUDE}
local done = redis.call('GET', KEYS[6])
if done then return {1, done} end
local blocked = tonumber(redis.call('GET', KEYS[3]) or '0')
if blocked > now then return {2, blocked - now} end
local max, window, daily = budget(KEYS[5], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local offset = tonumber(ARGV[6])
local day = math.floor((now - offset) / ${DAY_MS})
local used = tonumber(redis.call('HGET', KEYS[4], tostring(day)) or '0')
if used >= daily then
  local parkedUntil = (day + 1) * ${DAY_MS} + offset
  return {3, parkedUntil - now, parkedUntil}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local n = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local sendAt = now
if n >= max then
  -- The live count drops below max when the (n - max + 1)-th earliest slot expires.
  local k = n - max + 1
  local scores = {}
  for _, key in ipairs({KEYS[1], KEYS[2]}) do
    local r = redis.call('ZRANGE', key, 0, k - 1, 'WITHSCORES')
    for i = 2, #r, 2 do scores[#scores + 1] = tonumber(r[i]) end
  end
  table.sort(scores)
  sendAt = scores[k]
  if sendAt - now > tonumber(ARGV[7]) then return {2, sendAt - now} end
end
local inflight = tonumber(ARGV[5])
redis.call('ZADD', KEYS[1], sendAt + inflight + window, ARGV[1])
redis.call('PEXPIRE', KEYS[1], sendAt - now + inflight + window + 60000)
redis.call('HINCRBY', KEYS[4], tostring(day), 1)
if redis.call('HLEN', KEYS[4]) > 2 then
  for _, f in ipairs(redis.call('HKEYS', KEYS[4])) do
    if tonumber(f) < day - 1 then redis.call('HDEL', KEYS[4], f) end
  end
end
redis.call('PEXPIRE', KEYS[4], 3 * ${DAY_MS})
return {0, sendAt - now}
`;

/**
 * After waiting for a reserved slot: still clear to send? (A 429 seen meanwhile blocks it.)
 * KEYS: slots, block  ARGV: slotId → {0, 0} go | {2, waitMs} wait (the slot is given back)
 */
const PROCEED = `${PRELUDE}
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {2, blocked - now}
end
return {0, 0}
`;

/**
 * An answer came (or the request failed without one): the slot counts until one window from now.
 * KEYS: slots, others, learned, daily, ledger
 * ARGV: slotId, max, windowMs, daily, resetOffsetMs, remaining, headerMax, headerInterval,
 *       dailyRemaining, headerDaily, ledgerValue, ledgerTtlMs   ('' where absent)
 */
const SETTLE = `${PRELUDE}
if ARGV[11] ~= '' then redis.call('SET', KEYS[5], ARGV[11], 'PX', tonumber(ARGV[12])) end
local hmax, hint, hday = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local cmax, cwin, cday = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if hmax then
  if hmax < cmax then redis.call('HSET', KEYS[3], 'max', hmax) else redis.call('HDEL', KEYS[3], 'max') end
end
if hint then
  if hint > cwin then redis.call('HSET', KEYS[3], 'windowMs', hint) else redis.call('HDEL', KEYS[3], 'windowMs') end
end
if hday then
  if hday < cday then redis.call('HSET', KEYS[3], 'daily', hday) else redis.call('HDEL', KEYS[3], 'daily') end
end
redis.call('PEXPIRE', KEYS[3], 7 * ${DAY_MS})
local max, window, daily = budget(KEYS[3], cmax, cwin, cday)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + window, ARGV[1])
end
local remaining = tonumber(ARGV[6])
if remaining then
  -- Ours that HighLevel has surely counted: answered, and still inside the window.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local ours = redis.call('ZCOUNT', KEYS[1], '(' .. now, now + window)
  local others = (max - remaining) - ours
  local have = redis.call('ZCARD', KEYS[2])
  for i = have + 1, others do
    redis.call('ZADD', KEYS[2], now + window, ARGV[1] .. ':x' .. i)
  end
  if others > have then redis.call('PEXPIRE', KEYS[2], window + 60000) end
end
local dayRemaining = tonumber(ARGV[9])
if dayRemaining then
  local day = math.floor((now - tonumber(ARGV[5])) / ${DAY_MS})
  redis.call('HSET', KEYS[4], tostring(day), math.max(0, daily - dayRemaining))
end
return 1
`;

/**
 * HighLevel answered 429: that request did not count, and the location waits in every process.
 * KEYS: slots, block  ARGV: slotId, waitMs → the wait in ms
 */
const REFUSE = `${PRELUDE}
redis.call('ZREM', KEYS[1], ARGV[1])
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
 * KEYS: slots, daily  ARGV: slotId, resetOffsetMs
 */
const RELEASE = `${PRELUDE}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local day = math.floor((now - tonumber(ARGV[2])) / ${DAY_MS})
  if tonumber(redis.call('HGET', KEYS[2], tostring(day)) or '0') > 0 then
    redis.call('HINCRBY', KEYS[2], tostring(day), -1)
  end
end
return 1
`;

export type Acquired =
  | { kind: 'delivered'; entry: LedgerEntry }
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
      redis.defineCommand('ghlAcquire', { numberOfKeys: 6, lua: ACQUIRE });
      redis.defineCommand('ghlProceed', { numberOfKeys: 2, lua: PROCEED });
      redis.defineCommand('ghlSettle', { numberOfKeys: 5, lua: SETTLE });
      redis.defineCommand('ghlRefuse', { numberOfKeys: 2, lua: REFUSE });
      redis.defineCommand('ghlRelease', { numberOfKeys: 2, lua: RELEASE });
    }
  }

  /** Checks the ledger for `key`, then reserves a slot for `slot` (a unique id) or says how long to wait. */
  async acquire(locationId: string, key: string, slot: string): Promise<Acquired> {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const horizon = this.#o.horizonMs?.(b) ?? 2 * b.windowMs;
    const r = await this.#redis.ghlAcquire(
      k.slots, k.others, k.block, k.daily, k.learned, keysFor(this.#o.prefix).ledger(locationId, key),
      slot, b.max, b.windowMs, b.daily, this.#o.inflightMs, this.#o.resetOffsetMs, horizon,
    );
    switch (r[0]) {
      case 1: {
        const [messageId = '', at = '0'] = String(r[1]).split(' ');
        return { kind: 'delivered', entry: { messageId, at: Number(at) } };
      }
      case 0:
        return { kind: 'reserved', slot, sendInMs: Number(r[1]) };
      case 3:
        return { kind: 'parked', waitMs: Number(r[1]), until: Number(r[2]) };
      default:
        return { kind: 'wait', waitMs: Number(r[1]) };
    }
  }

  /** After waiting for a reserved slot: 0 to send now, else how long the location must wait (slot given back). */
  async proceed(locationId: string, slot: string): Promise<number> {
    const k = this.#keys(locationId);
    const [, waitMs] = await this.#redis.ghlProceed(k.slots, k.block, slot);
    return waitMs;
  }

  /** The answer of a slot's request (or its failure): learns from the headers, writes the ledger when delivered. */
  async settle(locationId: string, key: string, slot: string, rate: RateHeaders | undefined, delivered?: LedgerEntry): Promise<void> {
    const k = this.#keys(locationId);
    const b = this.#o.budget(locationId);
    const v = (n: number | undefined) => (n === undefined ? '' : n);
    await this.#redis.ghlSettle(
      k.slots, k.others, k.learned, k.daily, keysFor(this.#o.prefix).ledger(locationId, key),
      slot, b.max, b.windowMs, b.daily, this.#o.resetOffsetMs,
      v(rate?.remaining), v(rate?.max), v(rate?.intervalMs), v(rate?.dailyRemaining), v(rate?.daily),
      delivered === undefined ? '' : formatLedgerEntry(delivered), this.#o.ledgerTtlMs,
    );
  }

  /** HighLevel answered 429: the slot is given back and the location waits `retryAfterMs`, else one window. */
  async refuse(locationId: string, slot: string, retryAfterMs: number | undefined): Promise<number> {
    const k = this.#keys(locationId);
    const wait = retryAfterMs ?? this.#o.budget(locationId).windowMs;
    return this.#redis.ghlRefuse(k.slots, k.block, slot, Math.max(1, Math.ceil(wait)));
  }

  /** Gives back a reservation that was not used. */
  async release(locationId: string, slot: string): Promise<void> {
    const k = this.#keys(locationId);
    await this.#redis.ghlRelease(k.slots, k.daily, slot, this.#o.resetOffsetMs);
  }

  #keys(locationId: string) {
    return rateKeys(this.#o.prefix, locationId);
  }
}

/** The limiter's keys of a location (all in its hash slot). */
export function rateKeys(prefix: string, locationId: string) {
  const base = keysFor(prefix).rate(locationId);
  return {
    slots: `${base}:slots`,
    others: `${base}:others`,
    block: `${base}:block`,
    daily: `${base}:daily`,
    learned: `${base}:learned`,
  };
}
