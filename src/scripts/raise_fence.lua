-- Raise a lock's fencing counter to at least a token issued elsewhere
-- (Redlock writes the highest token of a quorum back to the masters, so
-- that any later majority issues tokens above it).
-- KEYS[1] fencing counter; ARGV[1] token, ARGV[2] retention in ms
-- Returns 1.
local current = redis.call('GET', KEYS[1])
if not current or decimal_less(current, ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
