--[[
  After Redis came back as another server (a restart that may have lost its last writes, a
  failover): a worker that wrote its own ledger entries back adds itself to the run's restored set,
  then asks how many workers alive lately have not done so yet. Until none is left, the ledger may
  still lack entries another worker remembers, and a message they name would be posted twice.

  KEYS[1] writers   ZSET  worker id -> the Redis time (ms) it last said it was alive
  KEYS[2] restored  SET   workers that wrote their entries back for this Redis run

  ARGV[1] the worker's id, added to the restored set ('' adds none)
  ARGV[2] aliveMs: a worker heard from within this long counts
  ARGV[3] ttlSeconds of the restored set
  ARGV[4] forgetMs: workers silent this long are dropped from the writers set
  ARGV[5..] workers the caller saw alive before the loss: they count too (Redis may have come
            back without the writers set at all)

  Returns the ids of the workers alive lately that are not in the restored set.
]]
local writers = KEYS[1]
local restored = KEYS[2]
local id = ARGV[1]
local aliveMs = tonumber(ARGV[2])
local ttlSeconds = tonumber(ARGV[3])
local forgetMs = tonumber(ARGV[4])

if id ~= '' then
  redis.call('SADD', restored, id)
  redis.call('EXPIRE', restored, ttlSeconds)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', writers, '-inf', now - forgetMs)
local pending = {}
local asked = {}
local function check(writer)
  if asked[writer] then return end
  asked[writer] = true
  if redis.call('SISMEMBER', restored, writer) == 0 then pending[#pending + 1] = writer end
end
for _, writer in ipairs(redis.call('ZRANGE', writers, now - aliveMs, '+inf', 'BYSCORE')) do check(writer) end
for i = 5, #ARGV do check(ARGV[i]) end
return pending
