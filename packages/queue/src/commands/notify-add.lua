--[[
  Adds a notification to the outbox unless the same happening was added lately (its dedupe key
  is still alive), keeping at most `capacity` events: when full, the oldest go.

  KEYS[1] events  STREAM  the outbox, oldest first; field `e`: the event's JSON
  KEYS[2] seen    STRING  the event's dedupe key, alive for ARGV[2] ms

  ARGV[1] event     JSON
  ARGV[2] dedupeMs  ms
  ARGV[3] capacity  events the outbox keeps at most

  Returns { added (1 or 0: a duplicate), events dropped to make room }.
]]
local eventsKey, seenKey = KEYS[1], KEYS[2]
local capacity = tonumber(ARGV[3])
if not redis.call('SET', seenKey, '1', 'NX', 'PX', ARGV[2]) then return { 0, 0 } end
local before = redis.call('XLEN', eventsKey)
redis.call('XADD', eventsKey, 'MAXLEN', capacity, '*', 'e', ARGV[1])
local dropped = before + 1 - capacity
if dropped < 0 then dropped = 0 end
return { 1, dropped }
