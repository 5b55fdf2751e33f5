-- Tell the waiters of a lock that it may be free although nobody released
-- it: a holder's renewal found its hold gone (the key was deleted,
-- evicted, or expired while the holder was away). The message is the one
-- a release sends (the lost hold's token), so parked waiters wake and try.
-- KEYS[1] lock key; ARGV[1] the lost hold's token, ARGV[2] channel,
-- ARGV[3] (optional) 'SPUBLISH' on a Redis 7 Cluster.
-- Publishes only while the key is absent: a lock someone else took since
-- has its own release to come. For a lease set (a semaphore's permits),
-- while the lost hold's lease is absent or ended: its permits are free.
-- Returns 1 when it published, else 0.
-- A second run (a late copy) at most wakes the waiters once more; they try
-- and, finding the lock held, wait again: it changes no lock.
local kind = key_type(KEYS[1])
if kind == 'zset' then
  local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if ends and tonumber(ends) > clock_ms() then
    return 0
  end
elseif kind ~= 'none' then
  return 0
end
redis.call(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[2], ARGV[1])
return 1
