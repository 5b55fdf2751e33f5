-- Release a read-write lock's writer hold if, and only if, this hold
-- still owns it (see src/rwlock.rs).
-- KEYS[1] the writer's key, KEYS[2] and KEYS[3] the writers' queue and
-- its arrival order; ARGV[1] the hold's token, ARGV[2] the channel,
-- ARGV[3] the handoff window in ms, ARGV[4] (optional) 'SPUBLISH' on a
-- Redis 7 Cluster.
-- Returns 1 when released, 0 when the lock was not ours (expired or
-- taken).
-- A waiting writer goes next (the lock is handed to it, and only it is
-- woken: writer preference); with none, the key is deleted and the
-- message (the hold's token) wakes the waiting readers, which a plain
-- lock's release with nobody queued does not send.
--
-- A late copy: the key holds this hold's token only while this hold owns
-- it (tokens are never reused), so a copy arriving after the release, an
-- expiry or another holder's acquire changes nothing.
if key_type(KEYS[1]) ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local publish = ARGV[4] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
if queue_head(KEYS[2], KEYS[3]) then
  hand_to_next(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], publish)
else
  redis.call('DEL', KEYS[1])
  redis.call(publish, ARGV[2], ARGV[1])
end
return 1
