-- Describe a lock without changing it.
-- KEYS[1] lock key, KEYS[2] fencing counter, KEYS[3] and KEYS[4]
-- (optional) the waiter queue and its arrival order; ARGV[1] (with
-- KEYS[3]) the most queued waiters to list (> 0).
-- Returns {} when free (or only reserved for woken waiters), else
-- {kind, owner, pttl, fencing token, hold count}. The owner of a plain lock
-- is its hold's token; of a reentrant lock, the owning handle's token.
-- With KEYS[3] the reply goes on with the number of live queued waiters
-- and then, for at most ARGV[1] of them, the waiter id and the ms until its
-- entry runs out, in the order a release hands the lock on (queue_head:
-- earliest arrival first, entries whose expiry is not above now left out,
-- live entries without an arrival last).
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
  local limit = tonumber(ARGV[1])
  -- Exclusive of now: queue_head drops every entry scored <= now.
  local live = string.format('(%.0f', now)
  reply[#reply + 1] = redis.call('ZCOUNT', KEYS[3], live, '+inf')
  local listed = 0
  local function list(waiter, expiry)
    reply[#reply + 1] = waiter
    reply[#reply + 1] = tonumber(expiry) - now
    listed = listed + 1
  end
  -- In arrival order, a page at a time, skipping entries that ran out.
  local start = 0
  while listed < limit do
    local page = redis.call('ZRANGE', KEYS[4], start, start + 99)
    if #page == 0 then
      break
    end
    for _, waiter in ipairs(page) do
      local expiry = redis.call('ZSCORE', KEYS[3], waiter)
      if expiry and tonumber(expiry) > now and listed < limit then
        list(waiter, expiry)
      end
    end
    start = start + #page
  end
  if listed < limit then
    -- Live entries without an arrival (queued by an older client).
    local entries = redis.call('ZRANGEBYSCORE', KEYS[3], live, '+inf', 'WITHSCORES')
    for i = 1, #entries, 2 do
      if listed < limit and not redis.call('ZSCORE', KEYS[4], entries[i]) then
        list(entries[i], entries[i + 1])
      end
    end
  end
end
return reply
