-- Announce the new leader of an election (see src/election.rs): its value
-- and its term (the fencing token of its hold), for observers.
-- KEYS[1] the election's lock key, KEYS[2] its value key (a hash: token,
-- term, value).
-- ARGV[1] the leader's hold token, ARGV[2] its term, ARGV[3] its value,
-- ARGV[4] the channel, ARGV[5] (optional) 'SPUBLISH' on a Redis 7
-- Cluster. The value key has no expiry: it must last as long as the
-- leader holds (renewals extend only the lock key), and it is replaced
-- by the next leader's announcement or deleted by a resignation.
-- Returns 1 when announced, 0 when the hold no longer leads (then nothing
-- changes).
-- The message 'leader:' .. term wakes observers (and, spuriously, waiting
-- candidates, which look and wait again).
--
-- A late copy announces only while its hold still leads, and never a term
-- below the one announced: nothing a newer leader announced is replaced.
if key_type(KEYS[1]) ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local known = redis.call('HGET', KEYS[2], 'term')
if known and decimal_less(ARGV[2], known) then
  return 0
end
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'term', ARGV[2], 'value', ARGV[3])
redis.call('PERSIST', KEYS[2])
redis.call(ARGV[5] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[4], 'leader:' .. ARGV[2])
return 1
