-- The budget after what HighLevel's headers taught (a lower max, a longer window, a lower daily cap).
local function budget(learnedKey, max, window, daily)
  local l = redis.call('HMGET', learnedKey, 'max', 'windowMs', 'daily')
  local lmax, lwin, lday = tonumber(l[1]), tonumber(l[2]), tonumber(l[3])
  if lmax and lmax > 0 and lmax < max then max = lmax end
  if lwin and lwin > window then window = lwin end
  if lday and lday > 0 and lday < daily then daily = lday end
  return max, window, daily
end
