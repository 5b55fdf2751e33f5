-- Acquire a reentrant lock: a hash {owner, count, fence}.
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] owner token (one per Lock handle), ARGV[2] ttl in ms,
-- ARGV[3] '1' when the caller has been waiting, '0' otherwise.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
-- A hash whose owner is 'handoff' is reserved for waiters (see acquire.lua).
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'count', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('HGET', KEYS[1], 'fence') or '0'}
end
if owner and not (owner == 'handoff' and ARGV[3] == '1') then
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = next_fence(KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'count', 1, 'fence', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, fence}
