-- Acquire a reentrant lock (see the prelude for its hash).
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] owner token (one per Lock handle), ARGV[2] the new hold's token,
-- ARGV[3] ttl in ms, ARGV[4] '1' when the caller has been waiting, '0'
-- otherwise, ARGV[5] fencing counter retention in ms, ARGV[6] '1' when the
-- handle knows it has a live hold (so a hash it owns is a live tenure to
-- nest into), '0' when not, ARGV[7] the highest fencing token the handle
-- was ever given ('0' for none), ARGV[8] the caller's waiter id ('' for
-- a caller that will not wait), ARGV[9] the lease of its queue entry in ms
-- ('0': the last attempt),
-- ARGV[10..] the tokens of the handle's live holds (when the call was
-- sent); KEYS[3] and KEYS[4] the waiter queue and its arrival order (see
-- acquire.lua: a caller that finds the lock held queues, one that takes it
-- leaves the queue). A reentrant lock is never fair.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
--
-- The token returned is never below ARGV[7], and above it whenever the
-- hold does not nest into the handle's current tenure: a tenure that Redis
-- forgot or brought back from an older snapshot (its `fence` below what
-- the handle was already given) is never nested into.
--
-- A late copy (a retry whose first attempt ran, or a delayed duplicate):
-- - its own hold is there: the expiry only grows, the reply is the hold's
--   token again (a retry that finds its hold under a token below ARGV[7]
--   nests or renews as below instead, so a retry never returns less);
-- - the handle's tenure is there: it adds its (abandoned) hold, the expiry
--   only grows, and when it starts a new tenure its token is above every
--   earlier one. It drops only hold fields of its own handle whose token is
--   below ARGV[7] and that were not live when it was sent: holds that had
--   ended by then (every hold taken since has a token of at least ARGV[7]).
--   It never deletes the hash: live holds of the handle stay.
-- - another owner's lock: nothing changes;
-- - the lock is free: it takes it for an abandoned hold, which the
--   acquisition's give-back releases.
local kind = key_type(KEYS[1])
local hold = 'h:' .. ARGV[2]
local known = ARGV[7] or '0'
local waiter = ARGV[8] or ''
local ours = kind == 'hash' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1]
if ours then
  local fence = redis.call('HGET', KEYS[1], 'fence')
  local mine = redis.call('HGET', KEYS[1], hold)
  if mine == '1' and fence then
    mine = fence
  end
  if mine and not decimal_less(mine, known) then
    -- This very acquisition ran before: its hold is in place.
    expire_at_least(KEYS[1], ARGV[3])
    queue_leave(KEYS[3], KEYS[4], waiter)
    return {1, mine}
  end
  -- A hold of this acquisition whose token is below one the handle was
  -- given since (its first reply was lost, and another hold of the handle
  -- started a newer tenure meanwhile): it is given a token as any other
  -- acquisition below, never its older one.
  if ARGV[6] == '1' and fence and not decimal_less(fence, known) then
    -- A live tenure of the handle: nest, sharing its token.
    redis.call('HSET', KEYS[1], hold, fence)
    expire_at_least(KEYS[1], ARGV[3])
    queue_leave(KEYS[3], KEYS[4], waiter)
    return {1, fence}
  end
  -- Our handle's tenure, but the handle had no live hold, or Redis's
  -- tenure is older than a token the handle was given (restored from an
  -- older snapshot, a lagging replica, a Redlock master that missed the
  -- tenure's token): nesting would reuse an outdated token. Renew the
  -- tenure with a new token, dropping only holds that had ended.
  local live = {}
  for i = 10, #ARGV do
    live['h:' .. ARGV[i]] = true
  end
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    local field = fields[i]
    if string.sub(field, 1, 2) == 'h:' and not live[field]
        and decimal_less(fields[i + 1], known) then
      redis.call('HDEL', KEYS[1], field)
    end
  end
  local token = next_fence(KEYS[2], ARGV[5], known)
  redis.call('HSET', KEYS[1], 'fence', token, hold, token)
  expire_at_least(KEYS[1], ARGV[3])
  queue_leave(KEYS[3], KEYS[4], waiter)
  return {1, token}
end
if kind ~= 'none' then
  if not may_take_reservation(KEYS[1], kind, ARGV[4], waiter) then
    if waiter ~= '' then
      queue_join(KEYS[3], KEYS[4], waiter, ARGV[9])
    end
    return {0, redis.call('PTTL', KEYS[1])}
  end
  -- Only a handoff reservation (no hold) is replaced.
  redis.call('DEL', KEYS[1])
end
local fence = next_fence(KEYS[2], ARGV[5], known)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'fence', fence, hold, fence)
-- The key did not exist a moment ago: this sets its first expiry.
redis.call('PEXPIRE', KEYS[1], ARGV[3])
queue_leave(KEYS[3], KEYS[4], waiter)
return {1, fence}
