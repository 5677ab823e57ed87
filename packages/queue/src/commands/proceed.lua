--[[
  The gate a reserved request passes before it is sent: only while fewer than max requests count,
  and not while a probe after a 429 awaits its answer. If not yet, the request is rescheduled by
  its rank among the reservations, so waiting requests do not all wake for the same freed slot.

  KEYS[1] answered, KEYS[2] inflight, KEYS[3] reserved, KEYS[4] others, KEYS[5] block,
  KEYS[6] learned, KEYS[7] probe   (as in acquire.lua)

  ARGV[1] slotId, ARGV[2] max, ARGV[3] windowMs, ARGV[4] daily, ARGV[5] inflightMs,
  ARGV[6] defaultLatencyMs

  Returns {0, 0} in flight now, send | {1, waitMs} not yet: call again after waitMs
    | {2, waitMs} the location waits (the reservation is given back)
]]
--- @include "includes/now"
--- @include "includes/budget"
--- @include "includes/live"
--- @include "includes/kth-expiry"
local answeredKey, inflightKey, reservedKey, othersKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local blockKey, learnedKey, probeKey = KEYS[5], KEYS[6], KEYS[7]
local slot, inflightMs = ARGV[1], tonumber(ARGV[5])

local blocked = tonumber(redis.call('GET', blockKey) or '0')
if blocked > now then
  redis.call('ZREM', reservedKey, slot)
  return {2, blocked - now}
end
local max, window = budget(learnedKey, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local probe = redis.call('GET', probeKey)
if probe and probe ~= '1' and probe ~= slot then
  redis.call('ZADD', reservedKey, now + 50, slot)
  return {1, 50}
end
if live(answeredKey, inflightKey, othersKey) < max then
  if probe == '1' then redis.call('SET', probeKey, slot, 'PX', inflightMs) end
  redis.call('ZREM', reservedKey, slot)
  redis.call('ZADD', inflightKey, now + inflightMs, slot)
  redis.call('PEXPIRE', inflightKey, inflightMs + 60000)
  return {0, 0}
end
local latency = tonumber(redis.call('HGET', learnedKey, 'latency') or ARGV[6])
local counted = redis.call('ZCARD', answeredKey) + redis.call('ZCARD', inflightKey) + redis.call('ZCARD', othersKey)
local mine = redis.call('ZSCORE', reservedKey, slot)
local ahead = mine and redis.call('ZCOUNT', reservedKey, '-inf', '(' .. mine) or 0
local turn = kthExpiry(counted - max + 1 + ahead, answeredKey, inflightKey, othersKey, reservedKey, inflightMs, latency, window)
local waitMs = math.max(1, (turn or now) - now)
redis.call('ZADD', reservedKey, now + waitMs, slot)
return {1, waitMs}
