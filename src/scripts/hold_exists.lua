-- Whether one hold still owns its lock (read only).
-- KEYS[1] lock key; ARGV[1] the hold's token, ARGV[2] '1' for a reentrant
-- lock (a hash), '0' for a plain one.
-- Returns 1 when the hold is there, 0 when not.
-- A late copy: read only, changes nothing.
local kind = key_type(KEYS[1])
if ARGV[2] == '1' then
  if kind == 'hash' and redis.call('HEXISTS', KEYS[1], 'h:' .. ARGV[1]) == 1 then
    return 1
  end
  return 0
end
if kind == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
