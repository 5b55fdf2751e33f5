-- Shared prelude (prepended to the acquire scripts): issue the next fencing
-- token for a lock. Tokens never go below the server clock in microseconds,
-- so a counter lost in a restart without persistence restarts above every
-- token issued before it. Lua numbers are doubles: exact below 2^53.
local function next_fence(fence_key)
  local now = redis.call('TIME')
  local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local last = tonumber(redis.call('GET', fence_key) or '0') or 0
  local token = math.max(last + 1, floor)
  local text = string.format('%.0f', token)
  redis.call('SET', fence_key, text)
  return text
end
