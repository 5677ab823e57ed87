local DAY_MS = 86400000
-- The day a moment belongs to, days starting `offset` ms after midnight UTC (GHL_DAILY_RESET).
local function dayOf(ms, offset)
  return math.floor((ms - offset) / DAY_MS)
end
