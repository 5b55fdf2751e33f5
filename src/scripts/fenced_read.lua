-- Read a resource written by fenced_write.lua.
-- KEYS[1] resource hash {fence, value}
-- Returns {} when never written, else {fencing token, value}.
-- A late copy: read only, changes nothing.
local fence = redis.call('HGET', KEYS[1], 'fence')
if not fence then
  return {}
end
return {fence, redis.call('HGET', KEYS[1], 'value') or ''}
