-- Give back one hold's permits of a semaphore (see permit_acquire.lua).
-- KEYS[1] the lease set, KEYS[2] its permit count (see permit_count in
-- head.lua); ARGV[1] the hold's token, ARGV[2] the channel,
-- ARGV[3] (optional) 'SPUBLISH' on a Redis 7 Cluster.
-- All of it before the prelude (see src/scripts/source.rs).
-- Returns 1 when released, 0 when the hold's lease had ended or was
-- removed (its permits may have been taken by others since).
-- The release message carries the hold's token, so the semaphore's
-- waiters wake and try (a waiter ignores its own releases).
--
-- A late copy: tokens are never reused, so a copy arriving after the
-- release finds no member and changes nothing.
local ends = redis.pcall('ZSCORE', KEYS[1], ARGV[1])
if type(ends) ~= 'string' then
  return 0
end
remove_lease(KEYS[1], KEYS[2], ARGV[1])
if tonumber(ends) <= clock_ms() then
  return 0
end
redis.call(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[2], ARGV[1])
do
  return 1
end
-- @prelude
