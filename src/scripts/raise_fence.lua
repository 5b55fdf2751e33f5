-- Raise a lock's fencing counter to at least a token issued elsewhere
-- (Redlock writes the highest token of a quorum back to the masters, so
-- that any later majority issues tokens above it).
-- KEYS[1] fencing counter; ARGV[1] token
-- Returns 1.
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
