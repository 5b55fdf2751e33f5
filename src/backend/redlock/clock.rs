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

#[cfg(test)]
pub(crate) use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::sync::Mutex;

    use super::Clock;

    /// A clock that stands still until it is moved; clones share one time.
    #[derive(Clone, Debug)]
    pub(crate) struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        /// A clock standing at the current instant.
        pub(crate) fn new() -> Self {
            ManualClock(Arc::new(Mutex::new(Instant::now())))
        }

        /// Moves the clock on to `to`; a clock already past it stays (so
        /// requests in flight at once cost the slowest, not the sum).
        pub(crate) fn advance_to(&self, to: Instant) {
            let mut now = self.0.lock();
            if to > *now {
                *now = to;
            }
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock()
        }
    }
}
