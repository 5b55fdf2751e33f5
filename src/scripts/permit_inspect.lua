-- Describe a semaphore without changing it (see permit_acquire.lua).
-- KEYS[1] the lease set, KEYS[2] the fencing counter; ARGV[1] the most
-- holds to list.
-- Returns {permits in use, holds, fencing counter, then per listed hold
-- its token, ms until its lease ends and its permits}, holds whose lease
-- ends first first; ended leases are left out.
-- A late copy: read only, changes nothing.
local now = clock_ms()
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local used, holds, listed = 0, 0, {}
for i = 1, #live, 2 do
  local permits = tonumber(string.match(live[i], '^(%d+):')) or 1
  used = used + permits
  holds = holds + 1
  if holds <= tonumber(ARGV[1]) then
    table.insert(listed, live[i])
    table.insert(listed, tonumber(live[i + 1]) - now)
    table.insert(listed, permits)
  end
end
local reply = {used, holds, redis.call('GET', KEYS[2]) or '0'}
for _, item in ipairs(listed) do
  table.insert(reply, item)
end
return reply
