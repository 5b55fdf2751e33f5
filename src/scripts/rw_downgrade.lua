-- Downgrade a read-write lock's writer hold to a read lease, atomically:
-- no other writer can come in between (see src/rwlock.rs).
-- KEYS[1] the writer's key, KEYS[2] and KEYS[3] the writers' queue and
-- its arrival order, KEYS[4] the readers' lease set, KEYS[5] its count,
-- KEYS[6] the fencing counter.
-- ARGV[1] the writer hold's token, ARGV[2] the new read hold's token ('1:'
-- and a random part), ARGV[3] the read lease's ttl in ms, ARGV[4] fencing
-- counter retention in ms, ARGV[5] the channel, ARGV[6] the handoff
-- window in ms, ARGV[7] (optional) 'SPUBLISH' on a Redis 7 Cluster.
-- Returns {1, fencing token of the read hold}, or {0, 0} when the writer
-- hold no longer owns the lock (nothing changes).
-- The writer's release is rw_write_release.lua's: a waiting writer is
-- handed the lock (it then waits for this reader, as for any), else the
-- readers are woken.
--
-- A late copy: the writer's key holds this hold's token only while it
-- owns the lock (tokens are never reused), so a copy arriving after the
-- downgrade, an expiry or another holder's acquire changes nothing.
if key_type(KEYS[1]) ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 0}
end
local now = clock_ms()
local readers = permit_count(KEYS[4], KEYS[5])
local ended = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
if #ended > 0 then
  for _, member in ipairs(ended) do
    readers = readers - permits_of(member)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  readers = math.max(0, readers)
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
extend_expiry(KEYS[4], ARGV[3])
store_count(KEYS[4], KEYS[5], readers + permits_of(ARGV[2]))
local publish = ARGV[7] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
if queue_head(KEYS[2], KEYS[3]) then
  hand_to_next(KEYS[1], KEYS[2], KEYS[3], ARGV[5], ARGV[6], publish)
else
  redis.call('DEL', KEYS[1])
  redis.call(publish, ARGV[5], ARGV[1])
end
return {1, next_fence(KEYS[6], ARGV[4])}
