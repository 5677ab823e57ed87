--[[
  An answer came (or the request failed without one): the request counts until one window from
  now. Writes the ledger entry of a delivery (before the job completes) and counts it, learns from
  HighLevel's headers, and keeps count of HighLevel's own failures in a row at the location.

  KEYS[1] answered, KEYS[2] inflight, KEYS[3] others   (as in acquire.lua)
  KEYS[4] learned, KEYS[5] daily, KEYS[6] ledger, KEYS[7] probe
  KEYS[8] outage      STRING  HighLevel's failures in a row (502/503/504, unreachable, timeout)
  KEYS[9] stats       HASH  the location's outcomes
  KEYS[10] block      STRING  epoch ms until which the location waits (as in acquire.lua)

  ARGV[1] slotId, ARGV[2] max, ARGV[3] windowMs, ARGV[4] daily, ARGV[5] resetOffsetMs,
  ARGV[6] X-RateLimit-Remaining, ARGV[7] X-RateLimit-Max, ARGV[8] X-RateLimit-Interval-Milliseconds,
  ARGV[9] X-RateLimit-Daily-Remaining, ARGV[10] X-RateLimit-Limit-Daily   ('' where absent)
  ARGV[11] ledgerValue ('' unless delivered), ARGV[12] ledgerTtlMs, ARGV[13] inflightMs,
  ARGV[14] health: 'up' (HighLevel answered for itself), 'down' (it failed), '' (unknown)

  Returns the location's failures of HighLevel in a row ('down'), 0 otherwise. A failure that
  comes back while the location already waits for an outage was in flight when the wait began:
  it does not count again, so the wait grows once per probe, not once per request in flight.
]]
--- @include "includes/now"
--- @include "includes/budget"
--- @include "includes/day"
local OUTAGE_MEMORY_MS = 600000
local answeredKey, inflightKey, othersKey, learnedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dailyKey, ledgerKey, probeKey, outageKey, statsKey, blockKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local slot, inflightMs = ARGV[1], tonumber(ARGV[13])

if ARGV[11] ~= '' then
  redis.call('SET', ledgerKey, ARGV[11], 'PX', tonumber(ARGV[12]))
  redis.call('HINCRBY', statsKey, 'delivered', 1)
end
local failures = 0
if ARGV[14] == 'up' then
  redis.call('DEL', outageKey)
elseif ARGV[14] == 'down' then
  if tonumber(redis.call('GET', blockKey) or '0') > now then
    failures = tonumber(redis.call('GET', outageKey) or '0')
  else
    failures = redis.call('INCR', outageKey)
    redis.call('PEXPIRE', outageKey, OUTAGE_MEMORY_MS)
  end
end
if redis.call('GET', probeKey) == slot then redis.call('DEL', probeKey) end
local hmax, hint, hday = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local cmax, cwin, cday = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- What the headers teach is written only when it changes: this runs after every answer.
local l = redis.call('HMGET', learnedKey, 'max', 'windowMs', 'daily', 'latency')
local function learn(field, value, stored)
  if value == stored then return end
  if value then redis.call('HSET', learnedKey, field, value) else redis.call('HDEL', learnedKey, field) end
end
if hmax then learn('max', hmax < cmax and hmax or nil, tonumber(l[1])) end
if hint then learn('windowMs', hint > cwin and hint or nil, tonumber(l[2])) end
if hday then learn('daily', hday < cday and hday or nil, tonumber(l[3])) end
local max, window, daily = budget(learnedKey, cmax, cwin, cday)
local sentScore = redis.call('ZSCORE', inflightKey, slot)
if sentScore then
  redis.call('ZREM', inflightKey, slot)
  -- Expected latency, for scheduling only (safety never depends on it): a moving average.
  local took = now - (tonumber(sentScore) - inflightMs)
  local old = tonumber(l[4]) or took
  redis.call('HSET', learnedKey, 'latency', math.floor(old * 0.8 + took * 0.2))
end
redis.call('PEXPIRE', learnedKey, 7 * DAY_MS)
redis.call('ZADD', answeredKey, now + window, slot)
redis.call('PEXPIRE', answeredKey, window + 60000)
local remaining = tonumber(ARGV[6])
if remaining then
  -- What HighLevel counts beyond ours, others spent. Ours: answered and still in the window, and
  -- in flight (sent with this one, they have mostly reached it). Once others show up, the location
  -- is shared for ten windows, and only answered ones count as ours: slower to use the budget,
  -- but a rival's spending is not mistaken for our requests in flight.
  redis.call('ZREMRANGEBYSCORE', answeredKey, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', inflightKey, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', othersKey, '-inf', now)
  local answered, inflight = redis.call('ZCARD', answeredKey), redis.call('ZCARD', inflightKey)
  local others = (max - remaining) - answered - inflight
  if others > 0 then redis.call('HSET', learnedKey, 'sharedUntil', now + 10 * window) end
  if tonumber(redis.call('HGET', learnedKey, 'sharedUntil') or '0') > now then
    others = (max - remaining) - answered
  end
  local have = redis.call('ZCARD', othersKey)
  for i = have + 1, others do
    redis.call('ZADD', othersKey, now + window, slot .. ':x' .. i)
  end
  if others > have then redis.call('PEXPIRE', othersKey, window + 60000) end
end
local dayRemaining = tonumber(ARGV[9])
if dayRemaining then
  -- The day's count rises to what HighLevel counted of its own daily limit (another app spent
  -- some of it), and never falls: our requests still in flight are not in its count yet.
  local day = tostring(dayOf(now, tonumber(ARGV[5])))
  local counted = math.max(0, (hday or daily) - dayRemaining)
  if counted > tonumber(redis.call('HGET', dailyKey, day) or '0') then redis.call('HSET', dailyKey, day, counted) end
end
return failures
