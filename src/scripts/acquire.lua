-- Acquire a plain lock.
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] owner token, ARGV[2] ttl in ms, ARGV[3] '1' when the caller has
-- been waiting (and may take the lock during a handoff), '0' otherwise.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
--
-- A release that woke waiters leaves the value 'handoff' in the key for a
-- moment: fresh callers see the lock as held (and become waiters), waiters
-- may take it. So the lock goes to someone who was waiting, not to the
-- process that just released it.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, next_fence(KEYS[2])}
end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  -- A retried acquire whose first reply was lost: it is already ours.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('GET', KEYS[2]) or '0'}
end
if holder == 'handoff' and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, next_fence(KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
