--[[
  A slot not used (the worker stopped, or the location yields its turn before sending): give back
  the slot and the day's count; a probe that was not sent lets the next one go.

  KEYS[1] reserved, KEYS[2] inflight, KEYS[3] daily, KEYS[4] probe   (as in acquire.lua)
  ARGV[1] slotId, ARGV[2] resetOffsetMs

  Returns 1.
]]
--- @include "includes/now"
--- @include "includes/day"
local reservedKey, inflightKey, dailyKey, probeKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local slot = ARGV[1]
if redis.call('GET', probeKey) == slot then redis.call('SET', probeKey, '1', 'KEEPTTL') end
if redis.call('ZREM', reservedKey, slot) + redis.call('ZREM', inflightKey, slot) > 0 then
  local day = tostring(dayOf(now, tonumber(ARGV[2])))
  if tonumber(redis.call('HGET', dailyKey, day) or '0') > 0 then
    redis.call('HINCRBY', dailyKey, day, -1)
  end
end
return 1
