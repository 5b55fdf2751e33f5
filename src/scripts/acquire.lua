-- Acquire a plain lock.
-- KEYS[1] lock key, KEYS[2] fencing counter, KEYS[3] handoff marker
-- ARGV[1] owner token, ARGV[2] ttl in ms, ARGV[3] '1' when the caller has
-- been waiting (and may take the lock during a handoff), '0' otherwise.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
if ARGV[3] == '0' then
  -- A release just woke subscribed waiters: let one of them have it.
  local handoff = redis.call('PTTL', KEYS[3])
  if handoff > 0 then
    return {0, handoff}
  end
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[3])
  return {1, next_fence(KEYS[2])}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  -- A retried acquire whose first reply was lost: it is already ours.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('GET', KEYS[2]) or '0'}
end
return {0, redis.call('PTTL', KEYS[1])}
