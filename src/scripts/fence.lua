-- Shared prelude (prepended to the acquire scripts): issue the next fencing
-- token for a lock. The counter only grows; when it is missing (first use,
-- or lost in a restart without persistence) it restarts from the server
-- clock in microseconds, which is above every token issued before.
-- Lua numbers are doubles: exact below 2^53.
local function next_fence(fence_key)
  local token = redis.call('INCR', fence_key)
  if token == 1 then
    local now = redis.call('TIME')
    token = tonumber(now[1]) * 1000000 + tonumber(now[2])
    redis.call('SET', fence_key, string.format('%.0f', token))
  end
  return string.format('%.0f', token)
end
