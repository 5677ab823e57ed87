--[[
  A new holder takes a location's budget: the log its last holder saved, and whether that holder
  lapsed (it never closed its turn: it died or froze, or Redis lost what it wrote since). Marks the
  budget as held by `holder`, so that a lapsed holder that wakes up can no longer save over it.

  KEYS[1] state   HASH  log (the saved log, JSON: see budget-log.ts), holder, open ('1' while
                        held), leaseEnd (the holder's lease end, Redis ms), run (the Redis run id
                        the holder knew when it saved)
  KEYS[2] daily   HASH  requests per day index (what `status` shows)

  ARGV[1] holder (a token unique to this turn), ARGV[2] leaseEnd (this turn's lease end, ms),
  ARGV[3] run id the worker knows now ('' unknown), ARGV[4] resetOffsetMs, ARGV[5] ttlMs

  Returns {nowMs, log ('' none), lapsed (0/1), leaseEnd of the previous holder (ms, 0 none),
  day, the day's count}.
]]
--- @include "includes/now"
--- @include "includes/day"
local stateKey, dailyKey = KEYS[1], KEYS[2]
local holder, leaseEnd, run, offset = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local s = redis.call('HMGET', stateKey, 'log', 'open', 'leaseEnd', 'run')
local lapsed = 0
local previousEnd = tonumber(s[3] or '0') or 0
if s[2] == '1' then lapsed = 1 end
if run ~= '' and s[4] and s[4] ~= '' and s[4] ~= run then
  -- Saved under another Redis run: writes since may be lost (a restart, a failover). What its
  -- holder sent since is unknown, but it sent nothing after Redis went away.
  lapsed = 1
  if previousEnd < now then previousEnd = now end
end
redis.call('HSET', stateKey, 'holder', holder, 'open', '1', 'leaseEnd', leaseEnd, 'run', run)
redis.call('PEXPIRE', stateKey, tonumber(ARGV[5]))
local day = dayOf(now, offset)
local used = tonumber(redis.call('HGET', dailyKey, tostring(day)) or '0')
return {now, s[1] or '', lapsed, previousEnd, day, used}
