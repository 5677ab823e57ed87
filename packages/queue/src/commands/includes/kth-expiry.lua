-- The k-th moment a counted request is expected to stop counting: answered and others by their
-- scores, in-flight ones at (sent + expected latency + window), reserved ones at (when + latency + window).
local function kthExpiry(k, answered, inflight, others, reserved, inflightMs, latency, window)
  local e = {}
  for _, key in ipairs({answered, others}) do
    local r = redis.call('ZRANGE', key, 0, k - 1, 'WITHSCORES')
    for i = 2, #r, 2 do e[#e + 1] = tonumber(r[i]) end
  end
  local r = redis.call('ZRANGE', inflight, 0, k - 1, 'WITHSCORES')
  for i = 2, #r, 2 do e[#e + 1] = math.max(now, tonumber(r[i]) - inflightMs + latency) + window end
  if reserved then
    r = redis.call('ZRANGE', reserved, 0, k - 1, 'WITHSCORES')
    for i = 2, #r, 2 do e[#e + 1] = tonumber(r[i]) + latency + window end
  end
  table.sort(e)
  return e[k]
end
