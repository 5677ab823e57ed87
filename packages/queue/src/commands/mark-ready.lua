--[[
  Producers added messages for these locations: make each one due now unless it is due already,
  waiting (its wait ends by itself) or held. A held one is marked so that its holder, finding its
  queue empty just before these messages arrived, makes it due again instead of dropping it.
  Wakes the dispatchers when any location became due, and tells them of live messages for a
  held location (its holder takes them at once, ahead of the backfill it holds).

  KEYS[1] ready   ZSET  locations with work, score: when one may be taken (a lease's end if held)
  KEYS[2] live    ZSET  due locations with live messages, served before the others
  KEYS[3] leases  HASH  location -> the score of its current lease, with ':m' appended once
                        producers added messages while it was held; or 'check' / 'recheck'
                        when it is not held (see end-lease.lua)

  ARGV[1] 'live' (live messages), 'backfill', or 'resume' (a person started the location again:
          due now even if it was waiting), ARGV[2] the wake channel, ARGV[3..] location ids

  Publishes on the wake channel: the number of locations that became due (when any did; 'due:live'
  instead when live messages made them due, which a full dispatcher takes in a place it keeps for
  them), and 'live:<id>' for each held location given live messages.

  Returns how many locations became due.
]]
--- @include "includes/now"
local readyKey, liveKey, leasesKey = KEYS[1], KEYS[2], KEYS[3]
local live, resume = ARGV[1] == 'live', ARGV[1] == 'resume'
local woken = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', readyKey, id)
  local lease = score and redis.call('HGET', leasesKey, id)
  local held = lease == score
  local marked = score and lease == score .. ':m'
  -- 'check': no holder, only another process's stalled jobs to look at later; new work is due now
  -- ('recheck' is left by a turn that ends on a wait: the wait stands).
  if not score or ((resume or lease == 'check') and not held and tonumber(score) > now) then
    redis.call('ZADD', readyKey, now, id)
    woken = woken + 1
  elseif held then
    redis.call('HSET', leasesKey, id, score .. ':m')
  end
  if live and score and (held or marked) then redis.call('PUBLISH', ARGV[2], 'live:' .. id) end
  if live then redis.call('ZADD', liveKey, 'NX', now, id) end
end
if woken > 0 then redis.call('PUBLISH', ARGV[2], live and 'due:live' or woken) end
return woken
