--[[
  The end of a send. `done`: the events went (or were refused for good): they leave the outbox,
  whoever holds the lease now, and the backoff ends. `retry`: the send failed; the next waits
  `delayMs`, for every process, counted from Redis's clock.

  KEYS[1] events  STREAM  the outbox
  KEYS[2] sender  HASH    owner, leaseUntil, attempts, retryAt

  ARGV[1] owner    the calling process's id
  ARGV[2] 'done' or 'retry'
  ARGV[3] delayMs  (retry) how long until the next send
  ARGV[4..]        (done) the stream ids of the events sent

  Returns done: how many events left the outbox; retry: the failed sends in a row, or -1 when
  the caller no longer holds the lease (the holder keeps its own backoff).
]]
--- @include "includes/now"
local eventsKey, senderKey = KEYS[1], KEYS[2]
if ARGV[2] == 'done' then
  redis.call('HDEL', senderKey, 'attempts', 'retryAt')
  if #ARGV < 4 then return 0 end
  return redis.call('XDEL', eventsKey, unpack(ARGV, 4))
end
if redis.call('HGET', senderKey, 'owner') ~= ARGV[1] then return -1 end
redis.call('HSET', senderKey, 'retryAt', now + tonumber(ARGV[3]))
return redis.call('HINCRBY', senderKey, 'attempts', 1)
