-- Describe a lock without changing it.
-- KEYS[1] lock key, KEYS[2] fencing counter
-- Returns {} when free (or only reserved for woken waiters), else
-- {kind, owner, pttl, fencing token, hold count}. The owner of a plain lock
-- is its hold's token; of a reentrant lock, the owning handle's token.
-- A late copy: read only, changes nothing.
local kind = key_type(KEYS[1])
if kind == 'none' or is_handoff(KEYS[1], kind) or reserved_for(KEYS[1], kind) then
  return {}
end
local fence = redis.call('GET', KEYS[2]) or '0'
if kind == 'string' then
  return {'plain', redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), fence, 1}
end
if kind == 'hash' then
  local owner = redis.call('HGET', KEYS[1], 'owner') or ''
  local count = redis.call('HLEN', KEYS[1]) - NON_HOLD_FIELDS
  local held_fence = redis.call('HGET', KEYS[1], 'fence') or fence
  return {'reentrant', owner, redis.call('PTTL', KEYS[1]), held_fence, count}
end
return {}
