--[[
  Before a post: is the message already delivered (the ledger)? If not, take a slot of the
  location's budget now, or reserve the moment one is expected to free, or say how long the whole
  location must wait (a 429's block, a probe in flight, the daily budget spent).

  KEYS[1] answered    ZSET  requests answered (score: answer + window)
  KEYS[2] inflight    ZSET  requests sent, not yet answered (score: sent + inflightMs)
  KEYS[3] reserved    ZSET  requests scheduled, not yet sent (score: when)
  KEYS[4] others      ZSET  other apps' requests inferred from headers (score: expiry)
  KEYS[5] block       STRING  epoch ms until which the location waits (429, outage)
  KEYS[6] daily       HASH  requests per day index
  KEYS[7] learned     HASH  what HighLevel's headers taught, and the mean latency
  KEYS[8] ledger      STRING  the message's delivery ledger entry
  KEYS[9] probe       STRING  '1' a probe may go; else the slot id of the probe in flight
  KEYS[10] stats      HASH  the location's outcomes (delivered, skipped, dead)

  ARGV[1] slotId, ARGV[2] max, ARGV[3] windowMs, ARGV[4] daily, ARGV[5] inflightMs,
  ARGV[6] resetOffsetMs, ARGV[7] horizonMs, ARGV[8] defaultLatencyMs

  Returns {1, ledgerValue} already delivered (counted as skipped) | {2, waitMs} the location waits
    | {3, waitMs, parkedUntil} daily budget spent | {0, 0} in flight now, send
    | {0, sendInMs} reserved: pass `proceed` after sendInMs
]]
--- @include "includes/now"
--- @include "includes/budget"
--- @include "includes/live"
--- @include "includes/kth-expiry"
--- @include "includes/day"
local answeredKey, inflightKey, reservedKey, othersKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local blockKey, dailyKey, learnedKey, ledgerKey, probeKey, statsKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local slot = ARGV[1]
local inflightMs, offset, horizon = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

local done = redis.call('GET', ledgerKey)
if done then
  redis.call('HINCRBY', statsKey, 'skipped', 1)
  return {1, done}
end
local blocked = tonumber(redis.call('GET', blockKey) or '0')
if blocked > now then return {2, blocked - now} end
local max, window, daily = budget(learnedKey, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local day = dayOf(now, offset)
local used = tonumber(redis.call('HGET', dailyKey, tostring(day)) or '0')
if used >= daily then
  local parkedUntil = (day + 1) * DAY_MS + offset
  return {3, parkedUntil - now, parkedUntil}
end
-- After a 429, one request goes first and the rest wait for its answer's headers.
local probe = redis.call('GET', probeKey)
if probe and probe ~= '1' then return {2, 50} end
local counted = live(answeredKey, inflightKey, othersKey)
if probe and counted < max then
  redis.call('SET', probeKey, slot, 'PX', inflightMs)
end
-- Reservations nobody used (their worker died) lapse after a while.
redis.call('ZREMRANGEBYSCORE', reservedKey, '-inf', now - inflightMs - window)
local waiting = redis.call('ZCARD', reservedKey)
local sendAt = now
if counted + waiting >= max then
  local latency = tonumber(redis.call('HGET', learnedKey, 'latency') or ARGV[8])
  sendAt = math.max(now + 1, kthExpiry(counted + waiting - max + 1, answeredKey, inflightKey, othersKey, reservedKey, inflightMs, latency, window))
  if sendAt - now > horizon then return {2, sendAt - now} end
  redis.call('ZADD', reservedKey, sendAt, slot)
  redis.call('PEXPIRE', reservedKey, sendAt - now + inflightMs + window + 60000)
else
  redis.call('ZADD', inflightKey, now + inflightMs, slot)
  redis.call('PEXPIRE', inflightKey, inflightMs + 60000)
end
redis.call('HINCRBY', dailyKey, tostring(day), 1)
if redis.call('HLEN', dailyKey) > 2 then
  for _, f in ipairs(redis.call('HKEYS', dailyKey)) do
    if tonumber(f) < day - 1 then redis.call('HDEL', dailyKey, f) end
  end
end
redis.call('PEXPIRE', dailyKey, 3 * DAY_MS)
return {0, sendAt - now}
