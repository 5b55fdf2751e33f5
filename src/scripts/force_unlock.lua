-- Administrative unlock: delete the lock whoever holds it and wake waiters.
-- KEYS[1] lock key, KEYS[2] handoff marker; ARGV[1] channel
-- Returns 1 when a lock was deleted, 0 when it was already free.
local deleted = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if deleted > 0 then
  redis.call('PUBLISH', ARGV[1], 'released')
end
return deleted
