-- A waiter gives up (timeout, cancel, close, an error): it leaves the
-- queue, and if a release had just reserved the lock for it, the lock goes
-- on to the next live waiter (or is freed), so nobody waits for a waiter
-- that is gone.
-- KEYS[1] lock key, KEYS[2] and KEYS[3] the waiter queue and its arrival
-- order; ARGV[1] the waiter id,
-- ARGV[2] channel, ARGV[3] handoff window in ms, ARGV[4] (optional)
-- 'readers' for the writers' queue of a read-write lock, then (optional)
-- 'SPUBLISH' on a Redis 7 Cluster.
-- A waiter that leaves a free lock (a reservation for it ran out before it
-- gave up) hands it to the next live waiter the same way: otherwise that
-- one slept on until its re-check (up to 5 s).
-- A read-write lock's readers do not queue: they wait while a writer
-- holds, is handed, or waits for the lock (writer preference), and listen
-- on the writers' channel. When the waiter that leaves was the last writer
-- in their way (the lock is free and no writer is queued), the message
-- 'free' wakes them; they would otherwise sleep until they looked again
-- on their own (up to 5 s, while the writer's entry would have lasted).
-- Returns 1 when it handed the lock on, else 0.
--
-- A late copy: the waiter's id is its acquisition's own and that
-- acquisition has ended, so the entry is already gone and no reservation
-- names it; if the lock is free and waiters are queued, it hands the lock
-- to the first of them, as a release would; for a read-write lock it at
-- most wakes the readers once more (they look, and wait again if a writer
-- is in their way).
local readers = ARGV[4] == 'readers'
local publish = ARGV[#ARGV] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
queue_leave(KEYS[2], KEYS[3], ARGV[1])
local kind = key_type(KEYS[1])
if kind == 'none' then
  if not queue_head(KEYS[2], KEYS[3]) then
    if readers then
      redis.call(publish, ARGV[2], 'free')
    end
    return 0
  end
elseif reserved_for(KEYS[1], kind) ~= ARGV[1] then
  return 0
end
hand_to_next(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], publish)
if readers and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call(publish, ARGV[2], 'free')
end
return 1
