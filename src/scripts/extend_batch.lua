-- Extend many leases in one script (the watchdog's renewal round), each only
-- if still owned. One script for hundreds of leases costs Redis far less
-- than one script call each.
-- KEYS[i] lock key i; ARGV[i] its owner token, ARGV[n+i] its new ttl in ms,
-- ARGV[2n+i] '1' when it is a reentrant lock (a hash), else '0'.
-- Returns an array: 1 where extended, 0 where gone or someone else's.
local n = #KEYS
local out = {}
for i = 1, n do
  local owner
  if ARGV[2 * n + i] == '1' then
    owner = redis.call('HGET', KEYS[i], 'owner')
  else
    owner = redis.call('GET', KEYS[i])
  end
  if owner == ARGV[i] then
    out[i] = redis.call('PEXPIRE', KEYS[i], ARGV[n + i])
  else
    out[i] = 0
  end
end
return out
