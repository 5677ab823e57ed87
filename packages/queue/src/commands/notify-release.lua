--[[
  A stopping sender gives its lease up, so another worker takes over at its next look instead
  of when the lease runs out. The backoff, if any, stays.

  KEYS[1] sender  HASH  owner, leaseUntil, attempts, retryAt

  ARGV[1] owner   the calling process's id

  Returns 1 when it held the lease, else 0.
]]
local senderKey = KEYS[1]
if redis.call('HGET', senderKey, 'owner') ~= ARGV[1] then return 0 end
redis.call('HDEL', senderKey, 'owner', 'leaseUntil')
return 1
