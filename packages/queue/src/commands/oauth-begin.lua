--[[
  Single flight for an OAuth refresh: before any process spends a refresh token (or asks for a
  location token), it takes the record's refresh lease here. Only the holder calls HighLevel; the
  others wait for the new pair it stores (oauth-finish.lua), so a refresh token is spent once across
  every process and host. The lease outlives the HTTP timeout: a living holder never loses it. A
  lease found expired means its holder died mid-refresh: whether HighLevel spent that token is
  unknown, and the taker is told so.

  KEYS[1] record   HASH  the location's or company's OAuth record
  ARGV[1] owner    this attempt's id
  ARGV[2] gen      the generation the caller read (the refresh token it would spend)
  ARGV[3] leaseMs

  Returns:
    {0}              no record (removed, or never imported)
    {1}              the generation moved on: another process refreshed; read again
    {2, waitMs}      another process is refreshing; wait
    {3, takenOver}   the lease is yours (takenOver 1: the previous holder died mid-refresh)
    {4, reason}      revoked: only a new authorisation helps
]]
--- @include "includes/now"
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {0} end
local revoked = redis.call('HGET', key, 'revoked')
if revoked then return {4, revoked} end
if (redis.call('HGET', key, 'gen') or '0') ~= ARGV[2] then return {1} end
local holder = redis.call('HGET', key, 'lease')
local untilMs = tonumber(redis.call('HGET', key, 'leaseUntil') or '0')
if holder and untilMs > now then return {2, untilMs - now} end
redis.call('HSET', key, 'lease', ARGV[1], 'leaseUntil', now + tonumber(ARGV[3]))
return {3, holder and 1 or 0}
