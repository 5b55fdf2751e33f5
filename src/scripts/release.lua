-- Release a plain lock if, and only if, this hold still owns it.
-- KEYS[1] lock key; ARGV[1] the hold's token, ARGV[2] channel,
-- ARGV[3] handoff window in ms. The release message carries the hold's
-- token (a waiter ignores its own releases).
-- Returns 1 when released, 0 when the lock was not ours (expired or taken).
-- ARGV[4] (optional) 'SPUBLISH' on a Redis 7 Cluster: the release message
-- stays on the lock's shard instead of reaching every node.
-- KEYS[2] and KEYS[3] (optional) the waiter queue and its arrival order:
-- the lock is handed to the first live queued waiter, and only that one is
-- woken (see hand_to_next). Without
-- it (Redlock), every listener is woken and the lock is reserved for
-- whichever waiter comes first.
--
-- A late copy: the key holds this hold's token only while this hold owns
-- it (tokens are never reused), so a copy arriving after the release, an
-- expiry or another holder's acquire changes nothing.
--
-- The common case first, before the prelude (see src/scripts/source.rs):
-- our hold, and no queue (nobody waits) on a deployment that queues; a key
-- of another type makes GET answer an error, never our token.
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 and redis.pcall('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
-- @prelude
if key_type(KEYS[1]) ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local publish = ARGV[4] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
if KEYS[2] then
  hand_to_next(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], publish)
elseif redis.call(publish, ARGV[2], ARGV[1]) > 0 then
  -- Someone is waiting: reserve the lock for the woken waiters briefly.
  redis.call('SET', KEYS[1], 'handoff', 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
