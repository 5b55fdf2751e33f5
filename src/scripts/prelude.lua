-- Shared prelude, prepended to every script that takes or inspects a lock.
--
-- A plain lock is a string key holding the hold's token. A reentrant lock
-- is a hash {owner = the Lock handle's token, fence = its fencing token,
-- ['h:' .. hold token] = 1 per hold}: every acquisition, nested ones too,
-- has its own field, so a release, extend or renewal through one hold can
-- never touch another. The key's expiry only grows (extend, renewal and a
-- nested acquire set it to at least what they ask): one hold never
-- shortens another's lease, and a late command never shortens a lease.
--
-- Late copies. Any call may reach Redis again at any later moment (a copy
-- delayed in the network, a retry whose first attempt did run). Each
-- script's header says what such a copy does; none changes anything that
-- belongs to a newer hold: no script lowers an expiry (PEXPIRE only on a
-- key it has just created, else expire_at_least), removes a hold or key
-- that another hold created (a release: only its own hold; a reentrant
-- acquire: only holds of its own handle that had ended before it was
-- sent; a force-unlock: only the holder it names, never the same handle's
-- next tenure), or issues a token at or below one issued before.
-- The value 'handoff' (string) or owner 'handoff' (hash) reserves a just
-- released lock for the waiters its release woke (Redlock, whose masters
-- share no queue); the value 'handoff:' .. W reserves it for the one
-- queued waiter W that its release woke (see the waiter queue below).

-- The number of fields of a reentrant lock that are not holds.
local NON_HOLD_FIELDS = 2

local function key_type(key)
  return redis.call('TYPE', key)['ok']
end

-- Whether the key is reserved for woken waiters.
local function is_handoff(key, kind)
  if kind == 'string' then
    return redis.call('GET', key) == 'handoff'
  end
  if kind == 'hash' then
    return redis.call('HGET', key, 'owner') == 'handoff'
  end
  return false
end

-- The waiter id a 'handoff:' .. W reservation names, or nil.
local function reserved_for(key, kind)
  if kind ~= 'string' then
    return nil
  end
  local value = redis.call('GET', key)
  if string.sub(value, 1, 8) == 'handoff:' then
    return string.sub(value, 9)
  end
  return nil
end

-- Whether an acquire may replace the key's reservation: the legacy one by
-- any caller that has waited (`waited` '1'), a named one by its waiter.
local function may_take_reservation(key, kind, waited, waiter)
  if waited == '1' and is_handoff(key, kind) then
    return true
  end
  return waiter ~= '' and reserved_for(key, kind) == waiter
end

-- Sets the key's ttl to at least `ttl` ms (never shorter than now).
local function expire_at_least(key, ttl)
  if redis.call('PTTL', key) < tonumber(ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- Whether decimal string a < decimal string b (no leading zeros), exactly
-- over the whole u64 range (Lua numbers are doubles: 2^64-1 and 2^64-2
-- compare equal as numbers).
local function decimal_less(a, b)
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

-- Issues the next fencing token of a lock: max(counter + 1, server clock in
-- microseconds, floor + 1). The clock term keeps tokens increasing when the
-- counter is lost or rolled back (restart, older snapshot, lost AOF tail,
-- failover to a lagging replica, eviction), assuming the server clock
-- never steps back across such an event and tokens are not issued faster
-- than one per microsecond per name for long. `floor` (a decimal string,
-- optional) is the highest token the caller already knows of: the new
-- token is above it whatever Redis forgot. The counter expires after
-- `retention` ms without an acquire, so a free name leaves nothing behind.
-- Tokens stay below 2^53, where doubles are exact.
local function next_fence(fence_key, retention, floor)
  local now = redis.call('TIME')
  local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local token = (tonumber(redis.call('GET', fence_key) or '0') or 0) + 1
  if clock > token then
    token = clock
  end
  local above = (tonumber(floor or '0') or 0) + 1
  if above > token then
    token = above
  end
  local text = string.format('%.0f', token)
  redis.call('SET', fence_key, text, 'PX', retention)
  return text
end

-- Extends one hold to at least `ttl` ms if it still owns its lock; 1 or
-- 0. The key's expiry only ever grows: a renewal or extension that
-- arrives late (its sender gave up waiting) can never cut short a lease
-- that was extended since, nor one hold shorten another's.
local function extend_hold(key, hold, ttl, reentrant)
  local kind = key_type(key)
  if reentrant then
    if kind ~= 'hash' or redis.call('HEXISTS', key, 'h:' .. hold) == 0 then
      return 0
    end
  elseif kind ~= 'string' or redis.call('GET', key) ~= hold then
    return 0
  end
  expire_at_least(key, ttl)
  return 1
end

-- The waiter queue of a lock: a sorted set of waiter ids (one per waiting
-- acquisition, 'w:' and a random id), each scored with the server time in
-- ms at which its entry runs out unless the waiter asks again. A waiter
-- asks again at least every third of its entry's lease, so a live waiter's
-- entry never runs out, and a dead waiter's is skipped once it has.

local function server_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Queues `waiter` (or renews its entry) for `lease` ms; the queue key
-- lives at least as long as its newest entry. A lease of '0' is a
-- waiter's last attempt: it leaves the queue instead.
local function queue_join(queue, waiter, lease)
  if lease == '0' then
    redis.call('ZREM', queue, waiter)
    return
  end
  redis.call('ZADD', queue, server_ms() + tonumber(lease), waiter)
  expire_at_least(queue, lease)
end

local function queue_leave(queue, waiter)
  if waiter ~= '' then
    redis.call('ZREM', queue, waiter)
  end
end

-- A lock just became free: hands it to the live waiter that asked least
-- recently (removing it from the queue: if it does not take the lock, its
-- next attempt queues it again), by reserving the key for it for `window`
-- ms and waking only it (the message is its id); with no live waiter, the
-- key is deleted. `publish` is 'PUBLISH' or 'SPUBLISH'.
local function hand_to_next(key, queue, channel, window, publish)
  if redis.call('EXISTS', queue) == 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('ZREMRANGEBYSCORE', queue, '-inf', server_ms())
  local next_waiter = redis.call('ZRANGE', queue, 0, 0)[1]
  if not next_waiter then
    redis.call('DEL', key)
    return
  end
  redis.call('ZREM', queue, next_waiter)
  redis.call('SET', key, 'handoff:' .. next_waiter, 'PX', window)
  redis.call(publish, channel, next_waiter)
end
