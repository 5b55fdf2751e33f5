-- Extend many holds in one script (the watchdog's renewal round), each only
-- if it still owns its lock. One script for hundreds of leases costs Redis
-- far less than one script call each. A key of an unexpected type is a
-- lost hold, never an error that would abort the other leases.
-- KEYS[i] lock key i; ARGV[i] its hold token, ARGV[n+i] its new ttl in ms,
-- ARGV[2n+i] '1' when it is a reentrant lock (a hash), else '0'.
-- Returns an array: 1 where extended, 0 where the hold is gone.
--
-- A late copy: as extend.lua for each lease (the expiry only grows, only
-- for holds that still own their lock).
-- All of it before the prelude (see src/scripts/source.rs).
local n = #KEYS
local out = {}
for i = 1, n do
  out[i] = extend_hold(KEYS[i], ARGV[i], ARGV[n + i], ARGV[2 * n + i] == '1')
end
do
  return out
end
-- @prelude
