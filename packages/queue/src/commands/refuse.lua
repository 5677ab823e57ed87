--[[
  HighLevel answered 429 (or is down): that request did not count, and the location waits in every
  process; then one request probes first (see acquire.lua), since our view of the window was wrong.

  KEYS[1] inflight, KEYS[2] block, KEYS[3] probe   (as in acquire.lua)
  ARGV[1] slotId, ARGV[2] waitMs

  Returns the wait in ms (a longer block already set wins).
]]
--- @include "includes/now"
local inflightKey, blockKey, probeKey = KEYS[1], KEYS[2], KEYS[3]
local waitMs = tonumber(ARGV[2])
redis.call('ZREM', inflightKey, ARGV[1])
redis.call('SET', probeKey, '1', 'PX', waitMs * 3 + 60000)
local untilMs = now + waitMs
local current = tonumber(redis.call('GET', blockKey) or '0')
if untilMs > current then
  redis.call('SET', blockKey, untilMs, 'PX', waitMs + 1000)
  return untilMs - now
end
return current - now
