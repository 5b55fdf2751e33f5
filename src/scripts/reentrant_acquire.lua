-- Acquire a reentrant lock (see the prelude for its hash).
-- KEYS[1] lock key, KEYS[2] fencing counter
-- ARGV[1] owner token (one per Lock handle), ARGV[2] the new hold's token,
-- ARGV[3] ttl in ms, ARGV[4] '1' when the caller has been waiting, '0'
-- otherwise, ARGV[5] fencing counter retention in ms, ARGV[6] '1' when the
-- handle knows it has a live hold (so a hash it owns is a live tenure to
-- nest into), '0' when not.
-- Returns {1, fencing token} or {0, ms until the holder's lease ends}.
-- Adding a hold is idempotent: a retried attempt finds its field there.
local kind = key_type(KEYS[1])
local hold = 'h:' .. ARGV[2]
local ours = kind == 'hash' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1]
if ours and ARGV[6] ~= '1' and redis.call('HEXISTS', KEYS[1], hold) == 0 then
  -- Our handle's tenure, but none of its holds is live here: a release
  -- that has not arrived yet, or a tenure brought back by an older
  -- snapshot. Nesting into it would reuse its (possibly outdated) fencing
  -- token; start a new tenure instead.
  redis.call('DEL', KEYS[1])
  kind = 'none'
  ours = false
end
if ours then
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
