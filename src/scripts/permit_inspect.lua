-- Describe a semaphore without changing it (see permit_acquire.lua).
-- KEYS[1] the lease set, KEYS[2] the fencing counter, KEYS[3] its permit
-- count (see permit_count in head.lua); ARGV[1] the most holds to list.
-- Returns {permits in use, holds, fencing counter, then per listed hold
-- its token, ms until its lease ends and its permits}, holds whose lease
-- ends first first; ended leases are left out.
-- The permits in use are the count less the leases that ended; only
-- without a count (expired, evicted: the next acquire attempt counts
-- again) are the live leases read one by one.
-- A late copy: read only, changes nothing.
local now = clock_ms()
local holds = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
local used = stored_count(KEYS[1], KEYS[3])
if used then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
    used = used - permits_of(member)
  end
  used = math.max(0, used)
else
  used = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
    used = used + permits_of(member)
  end
end
local reply = {used, holds, redis.call('GET', KEYS[2]) or '0'}
local limit = tonumber(ARGV[1])
if limit > 0 and holds > 0 then
  local live
  if limit >= holds then
    live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
  else
    live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  end
  for i = 1, #live, 2 do
    table.insert(reply, live[i])
    table.insert(reply, tonumber(live[i + 1]) - now)
    table.insert(reply, permits_of(live[i]))
  end
end
return reply
