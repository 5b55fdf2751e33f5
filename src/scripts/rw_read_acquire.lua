-- Take a read lease of a read-write lock (see src/rwlock.rs).
-- KEYS[1] the writer's key (a plain lock, or a reservation for a woken
-- writer), KEYS[2] the writers' queue (scored by when each waiting
-- writer's entry runs out), KEYS[3] the readers' lease set, KEYS[4] its
-- count, KEYS[5] the fencing counter (the writer's: readers and writers
-- draw from one counter, so every hold's token is its own).
-- ARGV[1] the hold's token ('1:' and a random part), ARGV[2] ttl in ms,
-- ARGV[3] fencing counter retention in ms.
-- Returns {1, fencing token} or {0, ms to wait at most before asking
-- again}.
--
-- Writer preference: while a writer holds the lock, or is handed it, or
-- waits for it (a live entry in its queue), no new reader enters; the
-- readers inside finish, and the writer goes next. A writer's release
-- wakes the readers (rw_write_release.lua).
--
-- A late copy (a retry whose first attempt ran, or a delayed duplicate):
-- - the hold's lease is there: its end only moves later, and a new token
--   above every earlier one is issued;
-- - it is not (released, ended): it takes a read lease for a hold nobody
--   waits for any more, if no writer is in the way; the acquisition's
--   give-back, which watches for its unanswered attempts, releases it.
local now = clock_ms()
local ends = redis.call('ZSCORE', KEYS[3], ARGV[1])
local new_end = now + tonumber(ARGV[2])
if ends and tonumber(ends) > now then
  if new_end > tonumber(ends) then
    redis.call('ZADD', KEYS[3], 'XX', new_end, ARGV[1])
  end
  extend_expiry(KEYS[3], ARGV[2])
  return {1, next_fence(KEYS[5], ARGV[3])}
end
local writer_ttl = redis.call('PTTL', KEYS[1])
if writer_ttl ~= -2 then
  return {0, math.max(1, writer_ttl)}
end
local waiting = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if waiting[2] then
  return {0, math.max(1, tonumber(waiting[2]) - now)}
end
local readers = permit_count(KEYS[3], KEYS[4])
local ended = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #ended > 0 then
  for _, member in ipairs(ended) do
    readers = readers - permits_of(member)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  readers = math.max(0, readers)
end
redis.call('ZADD', KEYS[3], new_end, ARGV[1])
extend_expiry(KEYS[3], ARGV[2])
store_count(KEYS[3], KEYS[4], readers + permits_of(ARGV[1]))
do
  return {1, next_fence(KEYS[5], ARGV[3])}
end
-- @prelude
