-- Administrative unlock: delete the lock whoever holds it and wake waiters.
-- KEYS[1] lock key; ARGV[1] channel
-- Returns 1 when a lock was deleted, 0 when it was already free.
-- ARGV[2] (optional) 'SPUBLISH' on a Redis 7 Cluster: the release message
-- stays on the lock's shard instead of reaching every node.
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call(ARGV[2] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], 'released')
return 1
