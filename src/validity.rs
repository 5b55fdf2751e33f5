//! Lease validity arithmetic shared by leases and Redlock: a lease is
//! counted from the moment its command was sent, minus an allowance for
//! clock drift between this machine and Redis.

use std::time::Duration;

/// Clock skew and latency allowance for a ttl: 1 % plus 2 ms (as in Redlock).
pub(crate) fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}
