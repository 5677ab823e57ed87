--[[
  Stores what a refresh obtained, before anyone uses it, and ends the lease: the new access token
  (and the new refresh token, when HighLevel rotated it) in one step, so no process ever reads
  half a pair. Only the lease's holder may store.

  KEYS[1] record     HASH  the OAuth record
  ARGV[1] owner      the lease holder's id
  ARGV[2] access     the new access token, sealed
  ARGV[3] refresh    the new refresh token, sealed ('' when the grant has none: keep the old)
  ARGV[4] expiresAt  epoch ms
  ARGV[5] obtainedAt epoch ms
  ARGV[6] scope      the scopes granted, space-separated ('' when the grant names none: keep the old)

  Returns the new generation, or 0 when the caller does not hold the lease.
]]
local key = KEYS[1]
if redis.call('HGET', key, 'lease') ~= ARGV[1] then return 0 end
redis.call('HSET', key, 'access', ARGV[2], 'expiresAt', ARGV[4], 'refreshedAt', ARGV[5], 'failures', 0)
if ARGV[3] ~= '' then redis.call('HSET', key, 'refresh', ARGV[3]) end
if ARGV[6] ~= nil and ARGV[6] ~= '' then redis.call('HSET', key, 'scope', ARGV[6]) end
redis.call('HINCRBY', key, 'refreshes', 1)
redis.call('HDEL', key, 'lease', 'leaseUntil', 'lastError', 'retryAt')
return redis.call('HINCRBY', key, 'gen', 1)
