--[[
  A dispatcher takes up to `count` due locations for a lease: those with live messages first, then
  the others, longest due first (so every location gets its turn). A location held by a process
  that died becomes due again when its lease ends; it is taken with a flag saying its jobs must be
  checked for stalls (so are those whose last turn ended with another process's jobs active).

  KEYS[1] ready, KEYS[2] live, KEYS[3] leases   (as in mark-ready.lua)
  ARGV[1] count, ARGV[2] leaseMs, ARGV[3] '1': those with live messages only

  Returns {nextDueInMs, id1, lease1, check1, id2, lease2, check2, ...}: check 1 when the jobs
  must be checked for stalls; nextDueInMs -1 when nothing is scheduled.
]]
--- @include "includes/now"
local readyKey, liveKey, leasesKey = KEYS[1], KEYS[2], KEYS[3]
local count, lease = tonumber(ARGV[1]), now + tonumber(ARGV[2])
local out = {0}
local taken = 0
local function take(id)
  -- A lease left behind (its holder died), or a 'check' or 'recheck' left by the last turn's end.
  local check = redis.call('HGET', leasesKey, id) and 1 or 0
  redis.call('ZADD', readyKey, lease, id)
  redis.call('HSET', leasesKey, id, lease)
  out[#out + 1] = id
  out[#out + 1] = lease
  out[#out + 1] = check
  taken = taken + 1
end
while taken < count do
  local popped = redis.call('ZPOPMIN', liveKey)
  if #popped == 0 then break end
  local score = tonumber(redis.call('ZSCORE', readyKey, popped[1]) or 'inf')
  -- One that is waiting or held keeps its place: its wait ends, or its holder takes the live ones first.
  if score <= now then take(popped[1]) end
end
if taken < count and ARGV[3] ~= '1' then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', readyKey, '-inf', now, 'LIMIT', 0, count - taken)) do take(id) end
end
local first = redis.call('ZRANGE', readyKey, 0, 0, 'WITHSCORES')
out[1] = #first == 0 and -1 or math.max(0, tonumber(first[2]) - now)
return out
