--[[
  Before posts: for each message, is it already delivered (the ledger)? If not, take a slot of the
  location's budget now, or reserve the moment one is expected to free, or say how long the whole
  location must wait (a 429's block, a probe in flight, the daily budget spent). Takes a batch of
  one location's messages in one call: the location's state is read once, and each message is
  decided in order, exactly as if it had come alone.

  KEYS[1] answered    ZSET  requests answered (score: answer + window)
  KEYS[2] inflight    ZSET  requests sent, not yet answered (score: sent + inflightMs)
  KEYS[3] reserved    ZSET  requests scheduled, not yet sent (score: when)
  KEYS[4] others      ZSET  other apps' requests inferred from headers (score: expiry)
  KEYS[5] block       STRING  epoch ms until which the location waits (429, outage)
  KEYS[6] daily       HASH  requests per day index
  KEYS[7] learned     HASH  what HighLevel's headers taught, and the mean latency
  KEYS[8] probe       STRING  '1' a probe may go; else the slot id of the probe in flight
  KEYS[9] stats       HASH  the location's outcomes (delivered, skipped, dead)
  KEYS[10..] per message, in batch order, n of each: first the ledger entries (STRING: each
              message's delivery ledger entry), then the job locks (STRING: BullMQ's
              `<prefix>:loc.{id}:<jobId>:lock`, in the location's slot)

  ARGV[1] max, ARGV[2] windowMs, ARGV[3] daily, ARGV[4] inflightMs, ARGV[5] resetOffsetMs,
  ARGV[6] horizonMs, ARGV[7] defaultLatencyMs, ARGV[8..7+n] each message's slot id, in batch order,
  ARGV[8+n..7+2n] each message's lock token ('' : no lock to check), in batch order

  Returns per message, flattened, three values each:
    4, 0, 0                     the job's lock is not (or no longer) this token: take nothing
    1, ledgerValue, 0           already delivered (counted as skipped)
    2, waitMs, 0                the location waits
    3, waitMs, parkedUntil      the daily budget is spent
    0, 0, 0                     in flight now: send
    0, sendInMs, 0              reserved: pass `proceed` after sendInMs
]]
--- @include "includes/now"
--- @include "includes/budget"
--- @include "includes/live"
--- @include "includes/kth-expiry"
--- @include "includes/day"
local answeredKey, inflightKey, reservedKey, othersKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local blockKey, dailyKey, learnedKey, probeKey, statsKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local inflightMs, offset, horizon = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local FIRST = 8
local n = (#KEYS - 9) / 2

local out = {}
local skipped, taken = 0, 0
local blocked = tonumber(redis.call('GET', blockKey) or '0')
local max, window, daily = budget(learnedKey, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
local day = dayOf(now, offset)
local used = tonumber(redis.call('HGET', dailyKey, tostring(day)) or '0')
local probe = redis.call('GET', probeKey)
local counted = live(answeredKey, inflightKey, othersKey)
-- Reservations nobody used (their worker died) lapse after a while.
redis.call('ZREMRANGEBYSCORE', reservedKey, '-inf', now - inflightMs - window)
local waiting = redis.call('ZCARD', reservedKey)
local latency
local sendsNow = false

for i = FIRST, FIRST + n - 1 do
  local slot = ARGV[i]
  local token = ARGV[i + n]
  local done = redis.call('GET', KEYS[10 + i - FIRST])
  if token ~= '' and redis.call('GET', KEYS[10 + n + i - FIRST]) ~= token then
    -- Another worker may hold the job by now (this one paused past its lock): it must not post.
    out[#out + 1] = 4; out[#out + 1] = 0; out[#out + 1] = 0
  elseif done then
    skipped = skipped + 1
    out[#out + 1] = 1; out[#out + 1] = done; out[#out + 1] = 0
  elseif blocked > now then
    out[#out + 1] = 2; out[#out + 1] = blocked - now; out[#out + 1] = 0
  elseif used >= daily then
    local parkedUntil = (day + 1) * DAY_MS + offset
    out[#out + 1] = 3; out[#out + 1] = parkedUntil - now; out[#out + 1] = parkedUntil
  elseif probe and probe ~= '1' then
    -- After a 429, one request goes first and the rest wait for its answer's headers.
    out[#out + 1] = 2; out[#out + 1] = 50; out[#out + 1] = 0
  else
    if probe and counted < max then
      redis.call('SET', probeKey, slot, 'PX', inflightMs)
      probe = slot
    end
    local sendAt = now
    if counted + waiting >= max then
      latency = latency or tonumber(redis.call('HGET', learnedKey, 'latency') or ARGV[7])
      sendAt = math.max(now + 1, kthExpiry(counted + waiting - max + 1, answeredKey, inflightKey, othersKey, reservedKey, inflightMs, latency, window))
    end
    if sendAt - now > horizon then
      out[#out + 1] = 2; out[#out + 1] = sendAt - now; out[#out + 1] = 0
    else
      if sendAt > now then
        redis.call('ZADD', reservedKey, sendAt, slot)
        redis.call('PEXPIRE', reservedKey, sendAt - now + inflightMs + window + 60000)
        waiting = waiting + 1
      else
        -- At once, not at the end: a reservation later in the batch counts this one.
        redis.call('ZADD', inflightKey, now + inflightMs, slot)
        sendsNow = true
        counted = counted + 1
      end
      used = used + 1
      taken = taken + 1
      out[#out + 1] = 0; out[#out + 1] = sendAt - now; out[#out + 1] = 0
    end
  end
end

if sendsNow then redis.call('PEXPIRE', inflightKey, inflightMs + 60000) end
if skipped > 0 then redis.call('HINCRBY', statsKey, 'skipped', skipped) end
if taken > 0 then
  -- A new day's first count: drop the days before yesterday, and keep the hash three days.
  if redis.call('HINCRBY', dailyKey, tostring(day), taken) == taken then
    if redis.call('HLEN', dailyKey) > 2 then
      for _, f in ipairs(redis.call('HKEYS', dailyKey)) do
        if tonumber(f) < day - 1 then redis.call('HDEL', dailyKey, f) end
      end
    end
    redis.call('PEXPIRE', dailyKey, 3 * DAY_MS)
  end
end
return out
