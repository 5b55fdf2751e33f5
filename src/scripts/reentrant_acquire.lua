-- Acquire a reentrant lock (see the prelude for its hash).
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] owner token (one per Lock handle), ARGV[2] the new hold's token,
-- ARGV[3] ttl in ms, ARGV[4] '1' when the caller has been waiting, '0'
-- otherwise, ARGV[5] fencing counter retention in ms.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
-- Adding a hold is idempotent: a retried attempt finds its field there.
local kind = key_type(KEYS[1])
local hold = 'h:' .. ARGV[2]
if kind == 'hash' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], hold, 1)
  expire_at_least(KEYS[1], ARGV[3])
  local fence = redis.call('HGET', KEYS[1], 'fence')
  if not fence then
    fence = next_fence(KEYS[2], ARGV[5])
    redis.call('HSET', KEYS[1], 'fence', fence)
  end
  return {1, fence}
end
if kind ~= 'none' then
  if not (ARGV[4] == '1' and is_handoff(KEYS[1], kind)) then
    return {0, redis.call('PTTL', KEYS[1])}
  end
  redis.call('DEL', KEYS[1])
end
local fence = next_fence(KEYS[2], ARGV[5])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'fence', fence, hold, 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, fence}
