-- Administrative unlock: delete the lock and wake waiters, but only if it
-- is still held by the holder the caller saw (a force-unlock that reaches
-- Redis late must not break whoever holds the lock by then).
-- KEYS[1] lock key, KEYS[2] (a semaphore's only) its permit count (see
-- permit_count in head.lua); ARGV[1] channel, ARGV[2] the holder to remove: a plain
-- lock's hold token, or a reentrant lock's owner token followed by ':' and
-- the tenure's fencing token (a handle's next tenure has the same owner
-- but another token), or a semaphore permit's hold token (only that
-- permit is removed; a semaphore's force release names each hold it
-- found); '' for whoever holds it (every permit). ARGV[3] (optional)
-- 'SPUBLISH' on a Redis 7 Cluster: the release message stays on the
-- lock's shard instead of reaching every node.
-- Returns 1 when a lock was deleted, 0 when it was free or held by another.
--
-- A late copy naming a holder deletes only that holder's lock: a plain
-- hold's token is never reused, a reentrant tenure's token changes with
-- every new tenure of the handle (and whenever a tenure is renewed, in
-- which case the copy deletes nothing). A copy with '' deletes whoever
-- holds the lock when it arrives: that is what it asks for, and the
-- library never sends one (it names the holder it saw).
if ARGV[2] ~= '' then
  local kind = key_type(KEYS[1])
  local holder = nil
  if kind == 'zset' then
    local removed
    if KEYS[2] then
      removed = remove_lease(KEYS[1], KEYS[2], ARGV[2])
    else
      removed = redis.call('ZREM', KEYS[1], ARGV[2]) == 1
    end
    if not removed then
      return 0
    end
    redis.call(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], 'released')
    return 1
  elseif kind == 'string' then
    holder = redis.call('GET', KEYS[1])
  elseif kind == 'hash' then
    local owner = redis.call('HGET', KEYS[1], 'owner') or ''
    if string.find(ARGV[2], ':', 1, true) then
      holder = owner .. ':' .. (redis.call('HGET', KEYS[1], 'fence') or '')
    else
      holder = owner
    end
  end
  if holder ~= ARGV[2] then
    return 0
  end
end
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
if KEYS[2] then
  redis.call('DEL', KEYS[2])
end
redis.call(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], 'released')
return 1
