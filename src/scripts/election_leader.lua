-- Who leads an election (see src/election.rs), read only.
-- KEYS[1] the election's lock key, KEYS[2] its value key.
-- Returns {} when nobody leads (or the leadership is being handed to a
-- waiting candidate); {ms left} when a leader holds the lock but has not
-- announced itself yet (it does one round trip after it is elected);
-- else {ms left, the leader's hold token, its term, its value}.
-- A late copy: read only, changes nothing.
local kind = key_type(KEYS[1])
if kind ~= 'string' or is_handoff(KEYS[1], kind) or reserved_for(KEYS[1], kind) then
  return {}
end
local token = redis.call('GET', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
local announced = redis.call('HMGET', KEYS[2], 'token', 'term', 'value')
if announced[1] ~= token then
  return {pttl}
end
return {pttl, token, announced[2], announced[3]}
