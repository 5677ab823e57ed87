--[[
  The sender's turn: takes (or renews) the send lease, drops events older than the longest an
  event may wait, and returns the head of the outbox unless a failed send's backoff is not over.
  The backoff lives here, not in a process, so a worker that takes over (or restarts) waits it
  out too instead of sending at once.

  KEYS[1] events  STREAM  the outbox, oldest first; field `e`: the event's JSON
  KEYS[2] sender  HASH    owner, leaseUntil (epoch ms), attempts (failed sends in a row), retryAt (epoch ms)

  ARGV[1] owner     the calling process's id
  ARGV[2] leaseMs   how long the lease lasts unless renewed
  ARGV[3] count     events at most
  ARGV[4] maxAgeMs  older events are dropped unsent

  Returns { 'busy' } when another process holds the lease; else
  { 'wait', expired, attempts, ms } while a backoff runs, or
  { 'events', expired, attempts, oldestAgeMs, id1, json1, id2, json2, ... } (no ids: empty).
]]
--- @include "includes/now"
local eventsKey, senderKey = KEYS[1], KEYS[2]
local owner = ARGV[1]
local holder = redis.call('HGET', senderKey, 'owner')
if holder and holder ~= owner and tonumber(redis.call('HGET', senderKey, 'leaseUntil') or '0') > now then
  return { 'busy' }
end
redis.call('HSET', senderKey, 'owner', owner, 'leaseUntil', now + tonumber(ARGV[2]))
local expired = redis.call('XTRIM', eventsKey, 'MINID', now - tonumber(ARGV[4]))
local attempts = tonumber(redis.call('HGET', senderKey, 'attempts') or '0')
local retryAt = tonumber(redis.call('HGET', senderKey, 'retryAt') or '0')
if retryAt > now then return { 'wait', expired, attempts, retryAt - now } end
local entries = redis.call('XRANGE', eventsKey, '-', '+', 'COUNT', tonumber(ARGV[3]))
local reply = { 'events', expired, attempts, 0 }
if #entries > 0 then reply[4] = now - tonumber(string.match(entries[1][1], '^(%d+)')) end
for _, entry in ipairs(entries) do
  local fields, json = entry[2], ''
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then json = fields[i + 1] end
  end
  reply[#reply + 1] = entry[1]
  reply[#reply + 1] = json
end
return reply
