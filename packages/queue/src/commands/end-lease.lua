--[[
  A holder is done with a location for now. `mode`:
    'idle'  no message left to take: drop it from the ready set, or make it due after `ms` when
            `ms` >= 0 (a retry's backoff)
    'check' no message left to take, but jobs of another process are active: due after `ms`,
            when its next holder checks them for stalls (see claim.lua)
    'turn'  its time slice is over and it has more: due now, behind those already due
    'wait'  the location must wait `ms` (its budget, a 429, HighLevel down, the daily cap);
            with `check` 1, its next holder checks its jobs for stalls (see claim.lua)
  If producers added messages while it was held (the lease was marked), it is due now instead of
  dropped. A lease that ended and was taken by another process is left to that process.

  KEYS[1] ready, KEYS[2] live, KEYS[3] leases   (as in mark-ready.lua)
  ARGV[1] id, ARGV[2] lease, ARGV[3] mode, ARGV[4] ms, ARGV[5] check ('1' or '0')

  Returns 1 when the location's place was changed, 0 when another process holds it.
]]
--- @include "includes/now"
local readyKey, liveKey, leasesKey = KEYS[1], KEYS[2], KEYS[3]
local id, lease, mode, ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local current = redis.call('HGET', leasesKey, id)
local marked = current == lease .. ':m'
if current ~= lease and not marked then return 0 end
redis.call('HDEL', leasesKey, id)
if mode == 'check' then
  redis.call('HSET', leasesKey, id, 'check')
  redis.call('ZADD', readyKey, marked and now or now + ms, id)
elseif mode == 'wait' then
  -- 'recheck', not 'check': new work does not end the wait (see mark-ready.lua).
  if ARGV[5] == '1' then redis.call('HSET', leasesKey, id, 'recheck') end
  redis.call('ZADD', readyKey, now + ms, id)
elseif mode == 'turn' or marked then
  redis.call('ZADD', readyKey, now, id)
elseif ms >= 0 then
  redis.call('ZADD', readyKey, now + ms, id)
else
  redis.call('ZREM', readyKey, id)
  redis.call('ZREM', liveKey, id)
end
return 1
