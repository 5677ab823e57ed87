--[[
  A holder still working on a location extends its lease, so that no other process takes it as
  abandoned. A mark left by producers is kept (see end-lease.lua); a lease that already ended is
  not renewed (a renewal racing the end of a turn must not put the location back as held).

  KEYS[1] ready, KEYS[3] leases   (as in mark-ready.lua; KEYS[2] unused, for one key layout)
  ARGV[1] id, ARGV[2] lease, ARGV[3] leaseMs

  Returns the new lease, or 0 when another process holds the location now.
]]
--- @include "includes/now"
local readyKey, leasesKey = KEYS[1], KEYS[3]
local id, lease = ARGV[1], ARGV[2]
local current = redis.call('HGET', leasesKey, id)
local marked = current == lease .. ':m'
-- A lease that ended (or that another process took when it lapsed) is not brought back.
if current ~= lease and not marked then return 0 end
local renewed = now + tonumber(ARGV[3])
redis.call('ZADD', readyKey, renewed, id)
redis.call('HSET', leasesKey, id, marked and (renewed .. ':m') or renewed)
return renewed
