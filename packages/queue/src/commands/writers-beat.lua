--[[
  A worker says it is alive, so that after Redis lost writes the others wait for it to write back
  the ledger entries only its memory still has (see location/ledger-writeback.ts). Runs every few
  seconds per worker: kept to a few commands.

  KEYS[1] writers   ZSET  worker id -> the Redis time (ms) it last said it was alive
  KEYS[2] restored  SET   workers that wrote their entries back for the Redis run the worker saw

  ARGV[1] the worker's id
  ARGV[2] aliveMs: a worker heard from within this long counts as alive
  ARGV[3] '1': the worker has seen a run, and is added to KEYS[2] (it stays listed while it lives)
  ARGV[4] ttlSeconds of the restored set

  Returns the ids of the workers alive (this one among them): a worker remembers them, for when
  Redis comes back without this set.
]]
local writers = KEYS[1]
local restored = KEYS[2]
local id = ARGV[1]
local aliveMs = tonumber(ARGV[2])
local seen = ARGV[3] == '1'
local ttlSeconds = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', writers, now, id)
if seen and redis.call('SADD', restored, id) == 1 then redis.call('EXPIRE', restored, ttlSeconds) end
return redis.call('ZRANGE', writers, now - aliveMs, '+inf', 'BYSCORE')
