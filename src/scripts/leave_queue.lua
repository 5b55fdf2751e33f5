-- A waiter gives up (timeout, cancel, close, an error): it leaves the
-- queue, and if a release had just reserved the lock for it, the lock goes
-- on to the next live waiter (or is freed), so nobody waits for a waiter
-- that is gone.
-- KEYS[1] lock key, KEYS[2] and KEYS[3] the waiter queue and its arrival
-- order; ARGV[1] the waiter id,
-- ARGV[2] channel, ARGV[3] handoff window in ms, ARGV[4] (optional)
-- 'SPUBLISH' on a Redis 7 Cluster.
-- Returns 1 when it passed a reservation on, else 0.
--
-- A late copy: the waiter's id is its acquisition's own and that
-- acquisition has ended, so the entry is already gone and no reservation
-- names it; nothing changes.
queue_leave(KEYS[2], KEYS[3], ARGV[1])
if reserved_for(KEYS[1], key_type(KEYS[1])) ~= ARGV[1] then
  return 0
end
hand_to_next(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[4] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH')
return 1
