-- Extend one hold's lease, if that hold still owns the lock.
-- KEYS[1] lock key; ARGV[1] the hold's token, ARGV[2] new ttl in ms,
-- ARGV[3] '1' for a reentrant lock (a hash), '2' for a lease set (a
-- semaphore's permit), '0' for a plain lock.
-- Returns 1 when extended, 0 when the hold is gone.
--
-- A late copy: the expiry only grows, and only while this hold owns the
-- lock; a lease extended since keeps its longer expiry.
-- All of it before the prelude (see src/scripts/source.rs).
do
  return extend_hold(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
end
-- @prelude
