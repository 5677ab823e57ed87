--[[
  A worker says it is alive, so that after Redis lost writes the others wait for it to write back
  the ledger entries only its memory still has (see LocationState.watchForLoss). Also forgets
  workers silent for long: they are gone, and so is what they remembered.

  KEYS[1] writers   ZSET  worker id -> the Redis time (ms) it last said it was alive

  ARGV[1] the worker's id
  ARGV[2] forgetMs: a worker silent this long is dropped

  ARGV[3] aliveMs: a worker heard from within this long counts as alive

  Returns the ids of the workers alive (this one among them): a worker remembers them, for when
  Redis comes back without this set.
]]
local writers = KEYS[1]
local id = ARGV[1]
local forgetMs = tonumber(ARGV[2])
local aliveMs = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', writers, now, id)
redis.call('ZREMRANGEBYSCORE', writers, '-inf', now - forgetMs)
return redis.call('ZRANGE', writers, now - aliveMs, '+inf', 'BYSCORE')
