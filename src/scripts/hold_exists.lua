-- Whether one hold still owns its lock (read only).
-- KEYS[1] lock key; ARGV[1] the hold's token, ARGV[2] '1' for a reentrant
-- lock (a hash), '2' for a lease set (a semaphore's permits), '0' for a
-- plain lock.
-- Returns 1 when the hold is there, 0 when not.
-- A late copy: read only, changes nothing.
local kind = key_type(KEYS[1])
if ARGV[2] == '2' then
  local ends = kind == 'zset' and redis.call('ZSCORE', KEYS[1], ARGV[1])
  if ends and tonumber(ends) > clock_ms() then
    return 1
  end
  return 0
end
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
