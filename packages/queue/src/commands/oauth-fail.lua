--[[
  A refresh that did not obtain a token ends its lease and says why (never a secret). `revoked`:
  the refresh token is dead (invalid_grant, uninstalled, revoked): the record keeps the reason
  until a new authorisation replaces it. `unavailable`: HighLevel is down or slow; the record
  counts the failure and says when the next try may go, so every process backs off together.

  KEYS[1] record   HASH  the OAuth record
  ARGV[1] owner    the lease holder's id
  ARGV[2] kind     'revoked' | 'unavailable'
  ARGV[3] reason
  ARGV[4] retryAt  epoch ms (unavailable only)

  Returns the failures counted so far, or -1 when the caller does not hold the lease.
]]
local key = KEYS[1]
if redis.call('HGET', key, 'lease') ~= ARGV[1] then return -1 end
redis.call('HDEL', key, 'lease', 'leaseUntil')
if ARGV[2] == 'revoked' then
  redis.call('HSET', key, 'revoked', ARGV[3], 'lastError', ARGV[3])
  return tonumber(redis.call('HGET', key, 'failures') or '0')
end
redis.call('HSET', key, 'lastError', ARGV[3], 'retryAt', ARGV[4])
return redis.call('HINCRBY', key, 'failures', 1)
