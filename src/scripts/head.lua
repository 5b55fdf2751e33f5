-- The helpers a script's fast path needs, defined before it (see
-- src/scripts/source.rs: a script may run its common case before the
-- prelude, whose dozens of helper closures cost Redis more than that case
-- itself).

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
-- The counter is written and read in one command (SET ... GET, Redis 6.2
-- and later): the clock term first, and again with the counter's term in
-- the rare case that is higher (a clock behind, or more than one token per
-- microsecond).
local function next_fence(fence_key, retention, floor)
  local now = redis.call('TIME')
  local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local token = (tonumber(floor or '0') or 0) + 1
  if clock > token then
    token = clock
  end
  local text = string.format('%.0f', token)
  local counter = (tonumber(redis.call('SET', fence_key, text, 'PX', retention, 'GET') or '0') or 0) + 1
  if counter > token then
    text = string.format('%.0f', counter)
    redis.call('SET', fence_key, text, 'PX', retention)
  end
  return text
end

-- Takes `waiter` out of the queue.
local function queue_leave(queue, order, waiter)
  if waiter ~= '' then
    redis.call('ZREM', queue, waiter)
    redis.call('ZREM', order, waiter)
  end
end

-- Extends the expiry of an existing key to at least `ttl` ms, never
-- shortening it (a key without one gets one). Redis 7 says it in one
-- command (PEXPIRE ... GT, which leaves a key without an expiry alone);
-- Redis 6.2 asks PTTL first.
local function extend_expiry(key, ttl)
  if redis.REDIS_VERSION_NUM then
    if redis.call('PEXPIRE', key, ttl, 'GT') == 0 and redis.call('PTTL', key) == -1 then
      redis.call('PEXPIRE', key, ttl)
    end
  elseif redis.call('PTTL', key) < tonumber(ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- The server clock in ms.
local function clock_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Extends one lease of a lease set (a semaphore's permits, see
-- src/keys.rs): the member `hold` is scored with the server time in ms at
-- which its lease ends. A lease that has ended is gone even before a
-- later acquire removes its member, as an expired key is. The score only
-- grows, and the set's own expiry covers its longest lease. 1 or 0; a key
-- of another type makes ZSCORE answer an error (a table), never a score.
local function extend_lease_in_set(key, hold, ttl)
  local ends = redis.pcall('ZSCORE', key, hold)
  if type(ends) ~= 'string' then
    return 0
  end
  local now = clock_ms()
  if tonumber(ends) <= now then
    return 0
  end
  local new_end = now + tonumber(ttl)
  if new_end > tonumber(ends) then
    redis.call('ZADD', key, 'XX', new_end, hold)
  end
  extend_expiry(key, ttl)
  return 1
end

-- Extends one hold to at least `ttl` ms if it still owns its lock; 1 or
-- 0. `kind` is '0' for a plain lock (a string), '1' for a reentrant one (a
-- hash), '2' for a lease set. The key's expiry only ever grows: a renewal
-- or extension that arrives late (its sender gave up waiting) can never
-- cut short a lease that was extended since, nor one hold shorten
-- another's. The watchdog runs this for every held lease every period,
-- hence two commands, not four: a key of another type makes HEXISTS or GET
-- answer an error (the pcall returns it as a table), never 1 or our token.
local function extend_hold(key, hold, ttl, kind)
  if kind == '1' then
    if redis.pcall('HEXISTS', key, 'h:' .. hold) ~= 1 then
      return 0
    end
  elseif kind == '2' then
    return extend_lease_in_set(key, hold, ttl)
  elseif redis.pcall('GET', key) ~= hold then
    return 0
  end
  extend_expiry(key, ttl)
  return 1
end

-- A lease set's permit count (see src/keys.rs): a string key holding the
-- permits its members hold, ended leases not yet removed included, so that
-- an attempt need not read every member (one attempt on a full semaphore
-- of 300,000 holds read them all: 230 ms of server time). Each script that
-- adds or removes a member moves the count with it; where the count is
-- missing (expired, evicted) it is counted again from the members once;
-- where the lease set is gone (expired, deleted), so is the count. A
-- member not written by these scripts is counted only at such a recount.

-- The permits of one member: the number its token starts with (a member
-- not made by this library counts as one).
local function permits_of(member)
  return tonumber(string.match(member, '^(%d+):')) or 1
end

-- The permit count of lease set `key` (read only; nil when it has to be
-- counted again from the members).
local function stored_count(key, count_key)
  if redis.call('EXISTS', key) == 0 then
    return 0
  end
  return tonumber(redis.call('GET', count_key) or '')
end

-- Stores `count` as the permit count of `key`, expiring with it.
local function store_count(key, count_key, count)
  local pttl = redis.call('PTTL', key)
  if pttl == -2 then
    redis.call('DEL', count_key)
  elseif pttl > 0 then
    redis.call('SET', count_key, string.format('%.0f', count), 'PX', pttl)
  else
    redis.call('SET', count_key, string.format('%.0f', count))
  end
end

-- The permit count of `key`, counted again from its members if missing.
local function permit_count(key, count_key)
  local count = stored_count(key, count_key)
  if count then
    return count
  end
  count = 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    count = count + permits_of(member)
  end
  return count
end

-- Removes `hold` from lease set `key`, and its permits from the count;
-- whether it was there.
local function remove_lease(key, count_key, hold)
  if redis.call('ZREM', key, hold) == 0 then
    return false
  end
  local count = stored_count(key, count_key)
  if count then
    store_count(key, count_key, math.max(0, count - permits_of(hold)))
  end
  return true
end
