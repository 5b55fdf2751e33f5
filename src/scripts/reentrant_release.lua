-- Release one hold of a reentrant lock, if that hold still exists.
-- KEYS[1] lock key; ARGV[1] the hold's token, ARGV[2] channel,
-- ARGV[3] handoff window in ms. The release message carries the hold's
-- token (a waiter ignores its own releases).
-- Returns 1 when the lock is now free, 2 when other holds remain, 0 when
-- this hold was not there (expired, broken or released before).
-- ARGV[4] (optional) 'SPUBLISH' on a Redis 7 Cluster: the release message
-- stays on the lock's shard instead of reaching every node.
-- KEYS[2] and KEYS[3] (optional) the waiter queue and its order: see
-- release.lua.
--
-- A late copy: it removes only this hold's own field, which is gone after
-- the first run, so a copy changes nothing (other holds of the handle, and
-- later tenures, have fields of their own).
if key_type(KEYS[1]) ~= 'hash' or redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1]) == 0 then
  return 0
end
if redis.call('HLEN', KEYS[1]) > NON_HOLD_FIELDS then
  return 2
end
local publish = ARGV[4] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
if KEYS[2] then
  hand_to_next(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], publish)
  return 1
end
redis.call('DEL', KEYS[1])
if redis.call(publish, ARGV[2], ARGV[1]) > 0 then
  redis.call('SET', KEYS[1], 'handoff', 'PX', ARGV[3])
end
return 1
