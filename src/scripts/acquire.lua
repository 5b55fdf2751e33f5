-- Acquire a plain lock.
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] the hold's token, ARGV[2] ttl in ms, ARGV[3] '1' when the caller
-- has been waiting (and may take the lock during a handoff), '0' otherwise,
-- ARGV[4] fencing counter retention in ms.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
--
-- A release that woke waiters leaves a handoff reservation for a moment:
-- fresh callers see the lock as held (and become waiters), waiters may take
-- it. So the lock goes to someone who was waiting, not to the process that
-- just released it.
--
-- A late copy (a retry whose first attempt ran, or a delayed duplicate):
-- - the key is this hold's: the expiry only grows (an extension made since
--   is kept) and a new token above every earlier one is issued;
-- - the key is another hold's, or reserved: nothing changes;
-- - the key is free (this hold was released or expired meanwhile): it
--   takes the lock for a hold nobody waits for any more; the acquisition's
--   give-back, which watches for its unanswered attempts, releases it.
local kind = key_type(KEYS[1])
if kind == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  -- A retried attempt whose first reply was lost: it is already ours. The
  -- token of the first reply was never seen, so a fresh one is issued. The
  -- holder may have extended the lease since: never shorten it.
  expire_at_least(KEYS[1], ARGV[2])
  return {1, next_fence(KEYS[2], ARGV[4])}
end
if kind ~= 'none' and not (ARGV[3] == '1' and is_handoff(KEYS[1], kind)) then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, next_fence(KEYS[2], ARGV[4])}
