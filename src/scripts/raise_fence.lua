-- Raise a lock's fencing counter to at least a token issued elsewhere
-- (Redlock writes the highest token of a quorum back to the masters, so
-- that any later majority issues tokens above it), and for a reentrant
-- hold also its tenure's token and the hold's own, so that every master
-- nests later holds of the tenure under that one token.
-- KEYS[1] fencing counter, KEYS[2] (optional) lock key; ARGV[1] token,
-- ARGV[2] retention in ms, ARGV[3] and ARGV[4] (with KEYS[2]) the owner
-- token and the hold token.
-- Returns 1.
--
-- A late copy only raises: a counter, a tenure token or a hold token
-- already higher stays; a hold that is gone is not touched.
local current = redis.call('GET', KEYS[1])
if not current or decimal_less(current, ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if KEYS[2] and key_type(KEYS[2]) == 'hash'
    and redis.call('HGET', KEYS[2], 'owner') == ARGV[3] then
  local hold = 'h:' .. ARGV[4]
  local issued = redis.call('HGET', KEYS[2], hold)
  if issued then
    if decimal_less(issued, ARGV[1]) then
      redis.call('HSET', KEYS[2], hold, ARGV[1])
    end
    local fence = redis.call('HGET', KEYS[2], 'fence')
    if not fence or decimal_less(fence, ARGV[1]) then
      redis.call('HSET', KEYS[2], 'fence', ARGV[1])
    end
  end
end
return 1
