-- Requests that count now: answered (score: answer + window), in flight (score: sent + inflightMs,
-- so a crashed worker's slot lapses) and other apps' (score: expiry). Expired entries are dropped.
local function live(answered, inflight, others)
  redis.call('ZREMRANGEBYSCORE', answered, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', others, '-inf', now)
  return redis.call('ZCARD', answered) + redis.call('ZCARD', inflight) + redis.call('ZCARD', others)
end
