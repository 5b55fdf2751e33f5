-- Take permits of a semaphore. Its key is a lease set (see src/keys.rs and
-- extend_lease_in_set): one member per hold, '<permits>:<random>', scored
-- with the server time in ms at which the hold's lease ends; a hold
-- counts until then, so a crashed holder's permits come back after its
-- ttl, and never before.
-- KEYS[1] the lease set, KEYS[2] the fencing counter, KEYS[3] its permit
-- count (see permit_count in head.lua).
-- ARGV[1] the hold's token (its member), ARGV[2] ttl in ms, ARGV[3] the
-- semaphore's size (permits in all), ARGV[4] the permits the hold takes
-- (the number its token starts with, which is what counts), ARGV[5]
-- fencing counter retention in ms.
-- All of it before the prelude (see src/scripts/source.rs).
-- Returns {1, fencing token} or {0, ms until the first lease ends}: the
-- earliest moment permits may come back without a release.
--
-- The size is the caller's: a caller that asks with a smaller size than
-- the permits in use waits until enough are released (holders above the
-- new size keep their permits until they give them back).
--
-- A late copy (a retry whose first attempt ran, or a delayed duplicate):
-- - the hold's lease is there: its end only moves later, and a new token
--   above every earlier one is issued;
-- - it is not (released, ended): it takes permits for a hold nobody waits
--   for any more, if they are free; the acquisition's give-back, which
--   watches for its unanswered attempts, releases them.
local now = clock_ms()
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
local new_end = now + tonumber(ARGV[2])
if ends and tonumber(ends) > now then
  if new_end > tonumber(ends) then
    redis.call('ZADD', KEYS[1], 'XX', new_end, ARGV[1])
  end
  extend_expiry(KEYS[1], ARGV[2])
  return {1, next_fence(KEYS[2], ARGV[5])}
end
-- The permits in use: the count less the leases that ended (removed
-- now, each once), never a read of every member.
local used = permit_count(KEYS[1], KEYS[3])
local ended = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #ended > 0 then
  for _, member in ipairs(ended) do
    used = used - permits_of(member)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  used = math.max(0, used)
end
local permits = permits_of(ARGV[1])
if used + permits > tonumber(ARGV[3]) then
  store_count(KEYS[1], KEYS[3], used)
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
  return {0, first and math.max(1, tonumber(first) - now) or 1}
end
redis.call('ZADD', KEYS[1], new_end, ARGV[1])
extend_expiry(KEYS[1], ARGV[2])
store_count(KEYS[1], KEYS[3], used + permits)
do
  return {1, next_fence(KEYS[2], ARGV[5])}
end
-- @prelude
