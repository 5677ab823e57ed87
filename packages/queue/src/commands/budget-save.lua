--[[
  The holder of a location's budget saves its log: when its lease renews (`open` 1), and when its
  turn ends with nothing in flight (`open` 0). Only the holder that took it last may save: one
  whose lease lapsed and that another process took meanwhile writes nothing.

  KEYS[1] state, KEYS[2] daily   (as in budget-load.lua)

  ARGV[1] holder, ARGV[2] log (JSON), ARGV[3] open ('1' still held, '0' the turn ended),
  ARGV[4] leaseEnd (ms), ARGV[5] run id ('' unknown), ARGV[6] day, ARGV[7] the day's count,
  ARGV[8] ttlMs

  Returns 1 when saved, 0 when another holder has the budget now.
]]
--- @include "includes/now"
--- @include "includes/day"
local stateKey, dailyKey = KEYS[1], KEYS[2]
if redis.call('HGET', stateKey, 'holder') ~= ARGV[1] then return 0 end
redis.call('HSET', stateKey, 'log', ARGV[2], 'open', ARGV[3], 'leaseEnd', ARGV[4], 'run', ARGV[5])
redis.call('PEXPIRE', stateKey, tonumber(ARGV[8]))
local day, used = ARGV[6], tonumber(ARGV[7])
-- The day's count only rises here (what `status` shows; HighLevel's headers may have raised it).
if used > tonumber(redis.call('HGET', dailyKey, day) or '0') then
  redis.call('HSET', dailyKey, day, used)
  if redis.call('HLEN', dailyKey) > 2 then
    for _, f in ipairs(redis.call('HKEYS', dailyKey)) do
      if tonumber(f) < tonumber(day) - 1 then redis.call('HDEL', dailyKey, f) end
    end
  end
  redis.call('PEXPIRE', dailyKey, 3 * DAY_MS)
end
return 1
