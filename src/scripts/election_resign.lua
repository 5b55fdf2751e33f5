-- After a leader of an election released its hold (see src/election.rs):
-- withdraw its announcement and tell the observers.
-- KEYS[1] the election's value key; ARGV[1] the former leader's hold
-- token, ARGV[2] the channel, ARGV[3] (optional) 'SPUBLISH' on a Redis 7
-- Cluster. Returns 1.
-- A late copy deletes only this leader's announcement (tokens are never
-- reused), and at most wakes the observers once more.
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[2], 'resigned')
return 1
