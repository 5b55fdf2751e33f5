-- Write a value only if the writer's fencing token is at least every token
-- seen before on this resource (the same holder may write again; an older
-- holder, paused past its lease, is refused).
-- KEYS[1] resource hash {fence, value}; ARGV[1] fencing token, ARGV[2] value
-- Returns {1, token} when written, {0, highest token seen} when refused.
local seen = redis.call('HGET', KEYS[1], 'fence')
if seen and tonumber(seen) > tonumber(ARGV[1]) then
  return {0, seen}
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
return {1, ARGV[1]}
