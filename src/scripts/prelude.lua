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

-- The waiter queue of a lock is two sorted sets of the same waiter ids
-- (one per waiting acquisition: 'w:' and a random id, or 'f:' and a random
-- id for a fair lock's waiter):
-- - `queue` scores each with the server time in ms at which its entry runs
--   out unless the waiter asks again. A waiter asks again at least every
--   third of its entry's lease, so a live waiter's entry never runs out,
--   and a dead waiter's is skipped once it has.
-- - `order` scores each with its arrival: the server clock in
--   microseconds when it first queued, above every earlier arrival (so a
--   failover to a server whose clock is behind keeps the order). Asking
--   again keeps the arrival; a waiter whose entry ran out arrives anew.
-- A release hands the lock to the live waiter that arrived first.

local function server_time()
  local now = redis.call('TIME')
  return tonumber(now[1]), tonumber(now[2])
end

local function server_ms()
  local seconds, micros = server_time()
  return seconds * 1000 + math.floor(micros / 1000)
end

-- Whether `waiter` is a fair lock's waiter: it keeps its place when a
-- release hands it the lock, until it takes it or its entry runs out.
local function is_fair_waiter(waiter)
  return string.sub(waiter, 1, 2) == 'f:'
end

-- Queues `waiter` (or renews its entry) for `lease` ms; the queue's keys
-- live at least as long as its newest entry. A lease of '0' is a
-- waiter's last attempt: it leaves the queue instead.
local function queue_join(queue, order, waiter, lease)
  if lease == '0' then
    queue_leave(queue, order, waiter)
    return
  end
  local seconds, micros = server_time()
  local now_ms = seconds * 1000 + math.floor(micros / 1000)
  local entry = tonumber(redis.call('ZSCORE', queue, waiter) or '0')
  if entry <= now_ms or not redis.call('ZSCORE', order, waiter) then
    -- A new waiter, or one whose entry ran out: it arrives now.
    local arrival = seconds * 1000000 + micros
    local last = redis.call('ZRANGE', order, -1, -1, 'WITHSCORES')[2]
    if last and tonumber(last) >= arrival then
      arrival = tonumber(last) + 1
    end
    redis.call('ZADD', order, arrival, waiter)
  end
  redis.call('ZADD', queue, now_ms + tonumber(lease), waiter)
  expire_at_least(queue, lease)
  expire_at_least(order, lease)
end

-- The live waiter that arrived first, or nil; drops the entries that ran
-- out on the way (each is dropped once, so this stays cheap).
local function queue_head(queue, order)
  if redis.call('EXISTS', queue) == 0 then
    return nil
  end
  redis.call('ZREMRANGEBYSCORE', queue, '-inf', server_ms())
  if redis.call('EXISTS', queue) == 0 then
    redis.call('DEL', order)
    return nil
  end
  while true do
    local first = redis.call('ZRANGE', order, 0, 0)[1]
    if not first then
      -- Live entries without an arrival (queued by a client of an older
      -- version, which knew only `queue`) come after every ordered one.
      return redis.call('ZRANGE', queue, 0, 0)[1]
    end
    if redis.call('ZSCORE', queue, first) then
      return first
    end
    redis.call('ZREM', order, first)
  end
end

-- Ms until `waiter`'s queue entry runs out (0 when it has none): while a
-- lock is reserved for a fair waiter, nothing changes before that unless
-- that waiter acts (takes the lock, leaves), and then the next is woken.
local function entry_left(queue, waiter)
  local expiry = redis.call('ZSCORE', queue, waiter)
  if not expiry then
    return 0
  end
  return math.max(0, tonumber(expiry) - server_ms())
end

-- Reserves the lock for `waiter` for `window` ms and wakes only it (the
-- message is its id). `publish` is 'PUBLISH' or 'SPUBLISH'.
local function reserve_for(key, waiter, channel, window, publish)
  redis.call('SET', key, 'handoff:' .. waiter, 'PX', window)
  redis.call(publish, channel, waiter)
end

-- A lock just became free: hands it to the live waiter that arrived first
-- (see reserve_for); with no live waiter, the key is deleted. A waiter of
-- an ordinary lock leaves the queue then (if it does not take the lock,
-- its next attempt queues it again, as a new arrival); a fair lock's
-- waiter keeps its place until it takes the lock, so a waiter slower than
-- the window is handed it again rather than passed over.
local function hand_to_next(key, queue, order, channel, window, publish)
  local next_waiter = queue_head(queue, order)
  if not next_waiter then
    redis.call('DEL', key)
    return
  end
  if not is_fair_waiter(next_waiter) then
    queue_leave(queue, order, next_waiter)
  end
  reserve_for(key, next_waiter, channel, window, publish)
end
