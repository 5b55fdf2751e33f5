-- Describe a lock without changing it.
-- KEYS[1] lock key, KEYS[2] fencing counter, KEYS[3] (optional) the waiter
-- queue; ARGV[1] (with KEYS[3]) the most queued waiters to list (> 0).
-- Returns {} when free (or only reserved for woken waiters), else
-- {kind, owner, pttl, fencing token, hold count}. The owner of a plain lock
-- is its hold's token; of a reentrant lock, the owning handle's token.
-- With KEYS[3] the reply goes on with the number of live queued waiters
-- and then, for at most ARGV[1] of them, the waiter id and the ms until its
-- entry runs out, in the order a release hands the lock on (hand_to_next:
-- lowest score first, entries whose score is not above now left out).
-- A late copy: read only, changes nothing.
local kind = key_type(KEYS[1])
if kind == 'none' or is_handoff(KEYS[1], kind) or reserved_for(KEYS[1], kind) then
  return {}
end
local fence = redis.call('GET', KEYS[2]) or '0'
local reply
if kind == 'string' then
  reply = {'plain', redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), fence, 1}
elseif kind == 'hash' then
  local owner = redis.call('HGET', KEYS[1], 'owner') or ''
  local count = redis.call('HLEN', KEYS[1]) - NON_HOLD_FIELDS
  local held_fence = redis.call('HGET', KEYS[1], 'fence') or fence
  reply = {'reentrant', owner, redis.call('PTTL', KEYS[1]), held_fence, count}
else
  return {}
end
if KEYS[3] then
  local now = server_ms()
  -- Exclusive of now: hand_to_next drops every entry scored <= now.
  local live = string.format('(%.0f', now)
  reply[#reply + 1] = redis.call('ZCOUNT', KEYS[3], live, '+inf')
  local listed = redis.call('ZRANGEBYSCORE', KEYS[3], live, '+inf', 'WITHSCORES',
    'LIMIT', 0, tonumber(ARGV[1]))
  for i = 1, #listed, 2 do
    reply[#reply + 1] = listed[i]
    reply[#reply + 1] = tonumber(listed[i + 1]) - now
  end
end
return reply
