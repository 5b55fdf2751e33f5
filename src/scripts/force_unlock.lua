-- Administrative unlock: delete the lock and wake waiters, but only if it
-- is still held by the holder the caller saw (a force-unlock that reaches
-- Redis late must not break whoever holds the lock by then).
-- KEYS[1] lock key; ARGV[1] channel, ARGV[2] the holder to remove (a plain
-- lock's hold token or a reentrant lock's owner token; '' for whoever
-- holds it), ARGV[3] (optional) 'SPUBLISH' on a Redis 7 Cluster: the
-- release message stays on the lock's shard instead of reaching every node.
-- Returns 1 when a lock was deleted, 0 when it was free or held by another.
if ARGV[2] ~= '' then
  local kind = key_type(KEYS[1])
  local holder = nil
  if kind == 'string' then
    holder = redis.call('GET', KEYS[1])
  elseif kind == 'hash' then
    holder = redis.call('HGET', KEYS[1], 'owner')
  end
  if holder ~= ARGV[2] then
    return 0
  end
end
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], 'released')
return 1
