-- Write a value only if the writer's fencing token is above every token
-- seen before on this resource, or equal to the highest one and written by
-- the same hold (the same holder may write again; another hold with an
-- equal token, or an older holder paused past its lease, is refused).
-- Tokens compare exactly as decimal strings over the whole u64 range.
-- KEYS[1] resource hash {fence, holder, value}; ARGV[1] fencing token
-- (decimal, no leading zeros), ARGV[2] value, ARGV[3] the writing hold's
-- token ('' when the writer gave only a fencing token).
-- Returns {1, token} when written, {0, highest token seen} when refused.
--
-- A late copy: refused once a higher token was seen, or the same token
-- from another holder, so it never overwrites a newer holder's write. It
-- does put back its value over a later write of the same holder with the
-- same token (the library never sends a write twice; a writer that needs
-- order between its own writes reads back or waits for the reply).
local seen = redis.call('HGET', KEYS[1], 'fence')
if seen then
  if decimal_less(ARGV[1], seen) then
    return {0, seen}
  end
  if ARGV[1] == seen and (redis.call('HGET', KEYS[1], 'holder') or '') ~= ARGV[3] then
    return {0, seen}
  end
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'holder', ARGV[3], 'value', ARGV[2])
return {1, ARGV[1]}
