//! Waiting without polling: parkers that a release message, a deadline or a
//! cancellation wakes, and the [`CancelToken`] that another thread triggers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

/// Where one waiting thread sleeps. Every wake-up bumps a counter, so a
/// waiter that read the counter before its last acquire attempt can never
/// miss a release that happened after that attempt.
pub(crate) struct Parker {
    wakeups: Mutex<u64>,
    cond: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Parker {
            wakeups: Mutex::new(0),
            cond: Condvar::new(),
        })
    }

    pub(crate) fn wakeups(&self) -> u64 {
        *self.wakeups.lock()
    }

    pub(crate) fn wake(&self) {
        *self.wakeups.lock() += 1;
        self.cond.notify_all();
    }

    /// Sleeps until the counter differs from `seen` or `until` passes.
    /// Returns true when woken, false on the deadline.
    pub(crate) fn park(&self, seen: u64, until: Instant) -> bool {
        let mut wakeups = self.wakeups.lock();
        while *wakeups == seen {
            if self.cond.wait_until(&mut wakeups, until).timed_out() {
                return *wakeups != seen;
            }
        }
        true
    }
}

/// Lets one thread interrupt another thread's blocking acquire.
///
/// Cloning gives another handle to the same token. Once cancelled, every
/// acquire that was given the token returns `ErrorKind::Cancelled`
/// promptly, now and later, until [`reset`](CancelToken::reset).
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// use latchkey::{CancelToken, Client, ErrorKind};
/// let client = Client::open(&url)?;
/// let lock = client.lock("report")?;
/// let cancel = CancelToken::new();
/// let stopper = cancel.clone();
/// std::thread::spawn(move || stopper.cancel());
/// match lock.acquire_with(None, Some(&cancel)) {
///     Ok(guard) => drop(guard),
///     Err(e) => assert_eq!(e.kind(), ErrorKind::Cancelled),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    parked: Wakers,
}

/// Parkers that one event wakes together (a cancel, a close, a reentrant
/// handle taking its lock), each registered while its acquisition waits.
#[derive(Default)]
pub(crate) struct Wakers {
    inner: Arc<WakersInner>,
}

#[derive(Default)]
struct WakersInner {
    next_id: AtomicU64,
    parked: Mutex<Vec<(u64, Arc<Parker>)>>,
    /// Notified when a registration drops while someone waits for the
    /// registry to empty (see [`Wakers::wait_until_empty`]).
    left: Condvar,
    /// How many threads wait in [`Wakers::wait_until_empty`]; changed and
    /// read only under the `parked` lock. A notify costs a system call even
    /// with nobody waiting, and every acquisition drops a registration
    /// (one futex call per lock cycle, seen with strace).
    emptying: AtomicU64,
}

impl Wakers {
    /// Registers `parker` until the registration drops.
    pub(crate) fn register(&self, parker: &Arc<Parker>) -> CancelRegistration {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.parked.lock().push((id, parker.clone()));
        CancelRegistration {
            wakers: self.inner.clone(),
            id,
        }
    }

    /// Wakes every registered parker.
    pub(crate) fn wake_all(&self) {
        for (_, parker) in self.inner.parked.lock().iter() {
            parker.wake();
        }
    }

    /// Waits until every registration has dropped, or until `until`.
    fn wait_until_empty(&self, until: Instant) {
        let mut parked = self.inner.parked.lock();
        self.inner.emptying.fetch_add(1, Ordering::SeqCst);
        while !parked.is_empty() {
            if self.inner.left.wait_until(&mut parked, until).timed_out() {
                break;
            }
        }
        self.inner.emptying.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    ///
    /// ```
    /// assert!(!latchkey::CancelToken::new().is_cancelled());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: wakes every acquire waiting with this token.
    ///
    /// ```
    /// let t = latchkey::CancelToken::new();
    /// t.cancel();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.parked.wake_all();
    }

    /// Whether [`cancel`](CancelToken::cancel) was called (since the last reset).
    ///
    /// ```
    /// assert!(!latchkey::CancelToken::new().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Makes the token usable again after a cancellation.
    ///
    /// ```
    /// let t = latchkey::CancelToken::new();
    /// t.cancel();
    /// t.reset();
    /// assert!(!t.is_cancelled());
    /// ```
    pub fn reset(&self) {
        self.inner.cancelled.store(false, Ordering::SeqCst);
    }

    /// Waits until every registration has dropped (every acquire given the
    /// token has returned), or until `until`.
    pub(crate) fn wait_until_unregistered(&self, until: Instant) {
        self.inner.parked.wait_until_empty(until);
    }

    /// Registers a parker to be woken by `cancel` until the registration drops.
    pub(crate) fn register(&self, parker: &Arc<Parker>) -> CancelRegistration {
        self.inner.parked.register(parker)
    }
}

/// A parker's registration with [`Wakers`] (a cancel token's included);
/// dropping it unregisters.
pub(crate) struct CancelRegistration {
    wakers: Arc<WakersInner>,
    id: u64,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        let mut parked = self.wakers.parked.lock();
        parked.retain(|(id, _)| *id != self.id);
        if self.wakers.emptying.load(Ordering::SeqCst) > 0 {
            self.wakers.left.notify_all();
        }
    }
}

/// A small random duration in `[0, max)`, to spread simultaneous retries.
pub(crate) fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
    Duration::from_nanos(random % nanos)
}
