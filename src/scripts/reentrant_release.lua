-- Release one hold of a reentrant lock if we own it.
-- KEYS[1] lock key; ARGV[1] owner token, ARGV[2] channel,
-- ARGV[3] handoff window in ms. The release message carries the owner token
-- (a waiter ignores its own releases).
-- Returns 1 when the lock is now free, 2 when we still hold it (nested
-- holds remain), 0 when it was not ours.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
if redis.call('HINCRBY', KEYS[1], 'count', -1) > 0 then
  return 2
end
redis.call('DEL', KEYS[1])
if redis.call('PUBLISH', ARGV[2], ARGV[1]) > 0 then
  redis.call('HSET', KEYS[1], 'owner', 'handoff')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
