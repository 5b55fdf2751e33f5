//! Where Redlock reads "now": the monotonic clock in production, a clock
//! the unit tests move by hand, so that `ttl - elapsed - drift` and the
//! health timings can be checked exactly, without waiting.

use std::time::Instant;

/// A source of monotonic instants.
pub(crate) trait Clock: Clone + Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The process's monotonic clock ([`Instant::now`]); costs nothing to hold.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Monotonic;

impl Clock for Monotonic {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}
