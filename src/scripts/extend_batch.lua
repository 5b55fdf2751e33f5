-- Extend many holds in one script (the watchdog's renewal round), each only
-- if it still owns its lock. One script for hundreds of leases costs Redis
-- far less than one script call each. A key of an unexpected type is a
-- lost hold, never an error that would abort the other leases.
-- KEYS[i] lock key i; ARGV[1] the new ttl in ms and ARGV[2] the kind of
-- the holds ('0' plain, '1' reentrant, '2' lease set: see extend_hold),
-- the same for every lease of the call (the client groups leases so);
-- ARGV[2 + i] the hold token of lease i.
-- Two arguments per lease fewer than a ttl and a flag each: Redis parses
-- and interns every argument, for every lease, every period.
-- Returns an array: 1 where extended, 0 where the hold is gone.
--
-- A late copy: as extend.lua for each lease (the expiry only grows, only
-- for holds that still own their lock).
-- All of it before the prelude (see src/scripts/source.rs).
local ttl, kind = ARGV[1], ARGV[2]
local out = {}
for i = 1, #KEYS do
  out[i] = extend_hold(KEYS[i], ARGV[2 + i], ttl, kind)
end
do
  return out
end
-- @prelude
