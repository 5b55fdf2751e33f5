-- Acquire a plain lock.
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] the hold's token, ARGV[2] ttl in ms, ARGV[3] '1' when the caller
-- has been waiting (and may take the lock during a handoff), '0' otherwise,
-- ARGV[4] fencing counter retention in ms, ARGV[5] the caller's waiter id
-- ('' for a caller that will not wait: it never queues), ARGV[6] the lease
-- of its queue entry in ms ('0': its last attempt, which leaves the
-- queue whatever the outcome); KEYS[3] and KEYS[4] the waiter queue and
-- its arrival order (see the prelude).
-- A fair lock's caller adds ARGV[7] the lock's channel, ARGV[8] the
-- handoff window in ms and ARGV[9] (optional) 'SPUBLISH' on a Redis 7
-- Cluster: it never takes a free lock while a live waiter that arrived
-- before it is queued, and hands the lock to that waiter instead (wakes
-- it), so the lock goes in arrival order even when nobody released it
-- (the holder's lease ran out, a reservation was not taken in time).
-- A caller of an ordinary lock takes a free lock whoever is queued.
-- KEYS[5] (optional) the readers of a read-write lock (a lease set, see
-- rw_read_acquire.lua) whose writer this is: it is held while any
-- reader's lease lasts.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
--
-- A release leaves a handoff reservation for a moment: for the queued
-- waiter it woke ('handoff:' .. id), or (Redlock) for every waiter that has
-- waited ('handoff'). Fresh callers see the lock as held (and queue), so
-- the lock goes to someone who was waiting, not to the process that just
-- released it. A caller that finds the lock held queues (or renews its
-- entry); one that takes it leaves the queue.
--
-- A late copy (a retry whose first attempt ran, or a delayed duplicate):
-- - the key is this hold's: the expiry only grows (an extension made since
--   is kept) and a new token above every earlier one is issued;
-- - the key is another hold's, or reserved: nothing changes, except that
--   the waiter is queued again: an entry for a waiter that is gone, which
--   runs out after its lease (until then a release may reserve the lock
--   for it once; the others look again within their re-check period);
-- - the key is free (this hold was released or expired meanwhile): it
--   takes the lock for a hold nobody waits for any more; the acquisition's
--   give-back, which watches for its unanswered attempts, releases it.
--
-- The common case first, before the prelude (see src/scripts/source.rs):
-- an ordinary lock found free is taken at once, with the same effects as
-- the last lines below.
-- (Without a queue there is nothing to leave: one EXISTS instead of two
-- ZREMs, as each command a script runs costs about as much as the script's
-- own overhead.)
if not ARGV[7] and not KEYS[5] and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local waiter = ARGV[5] or ''
  if waiter ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
    queue_leave(KEYS[3], KEYS[4], waiter)
  end
  return {1, next_fence(KEYS[2], ARGV[4])}
end
-- @prelude
local kind = key_type(KEYS[1])
local waiter = ARGV[5] or ''
if kind == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  -- A retried attempt whose first reply was lost: it is already ours. The
  -- token of the first reply was never seen, so a fresh one is issued. The
  -- holder may have extended the lease since: never shorten it.
  expire_at_least(KEYS[1], ARGV[2])
  queue_leave(KEYS[3], KEYS[4], waiter)
  return {1, next_fence(KEYS[2], ARGV[4])}
end
if KEYS[5] then
  -- A read-write lock's writer: live readers hold it too. The writer
  -- queues (new readers then wait: writer preference) and looks again
  -- when the first reader's lease would end; a reader's release wakes it.
  local reader = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. clock_ms(), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if reader[2] then
    if waiter ~= '' then
      queue_join(KEYS[3], KEYS[4], waiter, ARGV[6])
    end
    return {0, math.max(1, tonumber(reader[2]) - clock_ms())}
  end
end
if kind ~= 'none' and not may_take_reservation(KEYS[1], kind, ARGV[3], waiter) then
  if waiter ~= '' then
    queue_join(KEYS[3], KEYS[4], waiter, ARGV[6])
  end
  local wait = redis.call('PTTL', KEYS[1])
  local reserved = ARGV[7] and reserved_for(KEYS[1], kind)
  if reserved then
    -- Reserved for a fair waiter that keeps its place: look again when its
    -- entry runs out, not when the 100 ms reservation does (waiters behind
    -- a dead head asked every 100 ms for up to 15 s).
    wait = math.max(wait, entry_left(KEYS[3], reserved))
  end
  return {0, wait}
end
if kind == 'none' and ARGV[7] then
  -- A fair lock found free: it goes to the first live waiter in arrival
  -- order, which may be this caller. A last attempt ('0') looks before it
  -- leaves: a caller first in line takes the lock then, and only one that
  -- is not hands it on as it leaves (leaving first made the head, at its
  -- deadline, give a free lock to the waiter behind it).
  local last = ARGV[6] == '0'
  if waiter ~= '' and not last then
    queue_join(KEYS[3], KEYS[4], waiter, ARGV[6])
  end
  local first = queue_head(KEYS[3], KEYS[4])
  if first and first ~= waiter then
    if last then
      queue_leave(KEYS[3], KEYS[4], waiter)
    end
    reserve_for(KEYS[1], first, ARGV[7], ARGV[8], ARGV[9] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH')
    return {0, math.max(redis.call('PTTL', KEYS[1]), entry_left(KEYS[3], first))}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
queue_leave(KEYS[3], KEYS[4], waiter)
return {1, next_fence(KEYS[2], ARGV[4])}
