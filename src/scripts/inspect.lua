-- Describe a lock without changing it.
-- KEYS[1] lock key, KEYS[2] fencing counter
-- Returns {} when free (or only reserved for woken waiters), else
-- {kind, owner, pttl, fencing token, hold count}.
local kind = redis.call('TYPE', KEYS[1])['ok']
local fence = redis.call('GET', KEYS[2]) or '0'
if kind == 'string' then
  local owner = redis.call('GET', KEYS[1])
  if owner == 'handoff' then
    return {}
  end
  return {'plain', owner, redis.call('PTTL', KEYS[1]), fence, 1}
end
if kind == 'hash' then
  local owner = redis.call('HGET', KEYS[1], 'owner') or ''
  if owner == 'handoff' then
    return {}
  end
  local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0') or 0
  local held_fence = redis.call('HGET', KEYS[1], 'fence') or fence
  return {'reentrant', owner, redis.call('PTTL', KEYS[1]), held_fence, count}
end
return {}
