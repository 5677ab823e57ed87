--[[
  Answers came (or requests failed without one): each request counts until one window from its
  answer. Writes the ledger entry of each delivery (before its job completes) and counts it, learns
  from HighLevel's headers, and keeps count of HighLevel's own failures in a row at the location.
  Takes a batch of one location's answers in one call, applied in order as if each came alone.

  KEYS[1] answered, KEYS[2] inflight, KEYS[3] others   (as in acquire.lua)
  KEYS[4] learned, KEYS[5] daily, KEYS[6] probe   (as in acquire.lua)
  KEYS[7] outage      STRING  HighLevel's failures in a row (502/503/504, unreachable, timeout)
  KEYS[8] stats       HASH  the location's outcomes
  KEYS[9] block       STRING  epoch ms until which the location waits (as in acquire.lua)
  KEYS[10..] ledger   STRING  each answer's message's delivery ledger entry, in batch order

  ARGV[1] max, ARGV[2] windowMs, ARGV[3] daily, ARGV[4] resetOffsetMs, ARGV[5] ledgerTtlMs,
  ARGV[6] inflightMs; then per answer, 8 values in batch order:
    slotId, X-RateLimit-Remaining, X-RateLimit-Max, X-RateLimit-Interval-Milliseconds,
    X-RateLimit-Daily-Remaining, X-RateLimit-Limit-Daily   ('' where absent),
    ledgerValue ('' unless delivered),
    health: 'up' (HighLevel answered for itself), 'down' (it failed), '' (unknown)

  Returns per answer the location's failures of HighLevel in a row after it ('down'), else 0. A
  failure that comes back while the location already waits for an outage was in flight when the
  wait began: it does not count again, so the wait grows once per probe, not once per request.
]]
--- @include "includes/now"
--- @include "includes/day"
local OUTAGE_MEMORY_MS = 600000
local FIRST, PER = 7, 8
local answeredKey, inflightKey, othersKey, learnedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dailyKey, probeKey, outageKey, statsKey, blockKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local cmax, cwin, cday = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ledgerTtl, inflightMs = tonumber(ARGV[5]), tonumber(ARGV[6])

-- What the headers taught so far, and the mean latency: read once, written once if changed.
local l = redis.call('HMGET', learnedKey, 'max', 'windowMs', 'daily', 'latency', 'sharedUntil')
local learned = { max = tonumber(l[1]), windowMs = tonumber(l[2]), daily = tonumber(l[3]) }
local stored = { max = learned.max, windowMs = learned.windowMs, daily = learned.daily }
local latency, sharedUntil = tonumber(l[4]), tonumber(l[5]) or 0
local latencyChanged, sharedChanged = false, false
local function effective()
  local max, window, daily = cmax, cwin, cday
  if learned.max and learned.max > 0 and learned.max < max then max = learned.max end
  if learned.windowMs and learned.windowMs > window then window = learned.windowMs end
  if learned.daily and learned.daily > 0 and learned.daily < daily then daily = learned.daily end
  return max, window, daily
end

local blocked = tonumber(redis.call('GET', blockKey) or '0') > now
local probe = redis.call('GET', probeKey)
local trimmed = false
local answeredCount, inflightCount
-- Written once at the end: the outage count cleared ('up' after the last 'down'), the day's count.
local cleared = false
local dayField, dayCount, dayRaised
local delivered = 0
local out = {}
local maxWindow = 0

for i = 0, (#ARGV - FIRST + 1) / PER - 1 do
  local a = FIRST + i * PER
  local slot, remaining, hmax, hint = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local dayRemaining, hday, ledgerValue, health = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6], ARGV[a + 7]

  if ledgerValue ~= '' then
    redis.call('SET', KEYS[10 + i], ledgerValue, 'PX', ledgerTtl)
    delivered = delivered + 1
  end
  local failures = 0
  if health == 'up' then
    if not cleared then
      redis.call('DEL', outageKey)
      cleared = true
    end
  elseif health == 'down' then
    cleared = false
    if blocked then
      failures = tonumber(redis.call('GET', outageKey) or '0')
    else
      failures = redis.call('INCR', outageKey)
      redis.call('PEXPIRE', outageKey, OUTAGE_MEMORY_MS)
    end
  end
  out[#out + 1] = failures
  if probe == slot then
    if health == 'down' then
      -- The probe failed: the worker makes the location wait next (refuse.lua); until then one
      -- request at most may probe, not every one that asks in between.
      redis.call('SET', probeKey, '1', 'KEEPTTL')
      probe = '1'
    else
      redis.call('DEL', probeKey)
      probe = nil
    end
  end
  if hmax then learned.max = hmax < cmax and hmax or nil end
  if hint then learned.windowMs = hint > cwin and hint or nil end
  if hday then learned.daily = hday < cday and hday or nil end
  local max, window, daily = effective()
  if window > maxWindow then maxWindow = window end

  local sentScore = redis.call('ZSCORE', inflightKey, slot)
  if sentScore then
    redis.call('ZREM', inflightKey, slot)
    if inflightCount then inflightCount = inflightCount - 1 end
    -- Expected latency, for scheduling only (safety never depends on it): a moving average.
    local took = now - (tonumber(sentScore) - inflightMs)
    latency = math.floor((latency or took) * 0.8 + took * 0.2)
    latencyChanged = true
  end
  if redis.call('ZADD', answeredKey, now + window, slot) == 1 and answeredCount then answeredCount = answeredCount + 1 end

  if remaining then
    -- What HighLevel counts beyond ours, others spent. Ours: answered and still in the window, and
    -- in flight (sent with this one, they have mostly reached it). Once others show up, the location
    -- is shared for ten windows, and only answered ones count as ours: slower to use the budget,
    -- but a rival's spending is not mistaken for our requests in flight.
    if not trimmed then
      redis.call('ZREMRANGEBYSCORE', answeredKey, '-inf', now)
      redis.call('ZREMRANGEBYSCORE', inflightKey, '-inf', now)
      redis.call('ZREMRANGEBYSCORE', othersKey, '-inf', now)
      answeredCount, inflightCount = redis.call('ZCARD', answeredKey), redis.call('ZCARD', inflightKey)
      trimmed = true
    end
    local answered, inflight = answeredCount, inflightCount
    local others = (max - remaining) - answered - inflight
    if others > 0 then
      sharedUntil = now + 10 * window
      sharedChanged = true
    end
    if sharedUntil > now then others = (max - remaining) - answered end
    if others > 0 then
      local have = redis.call('ZCARD', othersKey)
      for j = have + 1, others do
        redis.call('ZADD', othersKey, now + window, slot .. ':x' .. j)
      end
      if others > have then redis.call('PEXPIRE', othersKey, window + 60000) end
    end
  end

  if dayRemaining then
    -- The day's count rises to what HighLevel counted of its own daily limit (another app spent
    -- some of it), and never falls: our requests still in flight are not in its count yet.
    if not dayField then
      dayField = tostring(dayOf(now, tonumber(ARGV[4])))
      dayCount = tonumber(redis.call('HGET', dailyKey, dayField) or '0')
    end
    local counted = math.max(0, (hday or daily) - dayRemaining)
    if counted > dayCount then
      dayCount = counted
      dayRaised = true
    end
  end
end
if dayRaised then redis.call('HSET', dailyKey, dayField, dayCount) end

-- What the headers teach is written only when it changes: this runs after every answer.
for _, field in ipairs({ 'max', 'windowMs', 'daily' }) do
  if learned[field] ~= stored[field] then
    if learned[field] then redis.call('HSET', learnedKey, field, learned[field]) else redis.call('HDEL', learnedKey, field) end
  end
end
if latencyChanged then redis.call('HSET', learnedKey, 'latency', latency) end
if sharedChanged then redis.call('HSET', learnedKey, 'sharedUntil', sharedUntil) end
redis.call('PEXPIRE', learnedKey, 7 * DAY_MS)
redis.call('PEXPIRE', answeredKey, maxWindow + 60000)
if delivered > 0 then redis.call('HINCRBY', statsKey, 'delivered', delivered) end
return out
