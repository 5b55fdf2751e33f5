//! Several locks taken all together or not at all. Every multi-lock takes
//! its locks in one global order (their names' bytes), so two processes
//! that take overlapping sets, in whatever order their callers named them,
//! never wait for each other in a cycle; an acquisition that cannot take
//! them all gives back what it took.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::lock::{Guard, Lock, MAX_TTL};
use crate::wait::CancelToken;

/// The most locks one multi-lock may take.
pub const MAX_MULTI_LOCK_NAMES: usize = 1024;

/// Several named locks, taken all together or not at all. Make one with
/// [`Client::multi_lock`](crate::Client::multi_lock).
///
/// The locks are ordinary locks (a [`Lock`] of the same name, in any
/// process or language, excludes the multi-lock's holder and is excluded
/// by it). They are taken one after the other in the order of their
/// names' bytes, whatever order they were named in, so multi-locks of
/// overlapping sets never deadlock; if one cannot be taken in time, those
/// already taken are released. On a Cluster the names may live in
/// different slots: each lock is taken on its own node.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let transfer = client.multi_lock(&["account:7", "account:3"])?;
/// let both = transfer.acquire()?;
/// assert_eq!(both.names(), ["account:3", "account:7"]);
/// both.check()?;
/// both.release()?;
/// # Ok(()) }
/// ```
pub struct MultiLock {
    /// In acquisition order, without duplicates.
    locks: Vec<Lock>,
}

impl fmt::Debug for MultiLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLock")
            .field("names", &self.names())
            .finish()
    }
}

impl MultiLock {
    /// `locks` must be non-empty, in order, without duplicates.
    pub(crate) fn new(locks: Vec<Lock>) -> Self {
        MultiLock { locks }
    }

    /// The names, in the order they are taken (sorted, duplicates once).
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let both = client.multi_lock(&["b", "a", "b"]).unwrap();
    /// assert_eq!(both.names(), ["a", "b"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.locks.iter().map(Lock::name).collect()
    }

    /// Blocks until every lock is held (or Redis fails).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let guard = client.multi_lock(&["m-a", "m-b"]).unwrap().acquire().unwrap();
    /// # drop(guard);
    /// ```
    pub fn acquire(&self) -> Result<MultiGuard> {
        self.acquire_with(None, None)
    }

    /// Blocks at most `timeout` in all; `ErrorKind::Timeout` (holding
    /// nothing) if some lock stayed held.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// use std::time::Duration;
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let one = client.lock("m-c").unwrap().acquire().unwrap();
    /// let both = client.multi_lock(&["m-c", "m-d"]).unwrap();
    /// let err = both.acquire_timeout(Duration::from_millis(50)).unwrap_err();
    /// assert_eq!(err.kind(), latchkey::ErrorKind::Timeout);
    /// # drop(one);
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<MultiGuard> {
        self.acquire_with(Some(timeout), None)
    }

    /// One attempt per lock, no waiting: `Ok(None)` (holding nothing) if
    /// any is held by someone else.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// match client.multi_lock(&["m-e", "m-f"]).unwrap().try_acquire().unwrap() {
    ///     Some(guard) => drop(guard),
    ///     None => println!("busy"),
    /// }
    /// ```
    pub fn try_acquire(&self) -> Result<Option<MultiGuard>> {
        let mut taken = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            match lock.try_acquire() {
                Ok(Some(guard)) => taken.push(guard),
                Ok(None) => {
                    give_back(taken);
                    return Ok(None);
                }
                Err(e) => {
                    give_back(taken);
                    return Err(e);
                }
            }
        }
        Ok(Some(MultiGuard { guards: taken }))
    }

    /// The general form: wait at most `timeout` in all (`None`: for ever;
    /// zero: one attempt per lock, `Timeout` if any is held), and give up
    /// with `ErrorKind::Cancelled` as soon as `cancel` is triggered.
    /// Whatever the error, nothing stays held.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let cancel = latchkey::CancelToken::new();
    /// let guard = client.multi_lock(&["m-g", "m-h"]).unwrap().acquire_with(None, Some(&cancel));
    /// # drop(guard);
    /// ```
    pub fn acquire_with(
        &self,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<MultiGuard> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started.checked_add(t).unwrap_or(started + MAX_TTL));
        let mut taken = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match lock.acquire_with(left, cancel) {
                Ok(guard) => taken.push(guard),
                Err(e) => {
                    give_back(taken);
                    return Err(if e.kind() == ErrorKind::Timeout {
                        Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "multi-lock {:?}: lock '{}' stayed held; none is held (waited {:?})",
                                self.names(),
                                lock.name(),
                                timeout.unwrap_or_default()
                            ),
                        )
                    } else {
                        e
                    });
                }
            }
        }
        Ok(MultiGuard { guards: taken })
    }
}

/// Releases what a failed acquisition took, the last first.
fn give_back(taken: Vec<Guard>) {
    for guard in taken.into_iter().rev() {
        let _ = guard.release();
    }
}

/// Proof that every lock of a [`MultiLock`] is held: one [`Guard`] per
/// lock, in the multi-lock's order. Losing any one lease loses the whole:
/// [`check`](MultiGuard::check) and [`lost`](MultiGuard::lost) say so.
/// Dropping it releases every lock (best effort).
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let both = client.multi_lock(&["from", "to"])?.acquire()?;
/// for guard in both.guards() {
///     println!("{} fencing {}", guard.name(), guard.fencing_token());
/// }
/// assert!(!both.lost());
/// # Ok(()) }
/// ```
pub struct MultiGuard {
    guards: Vec<Guard>,
}

impl fmt::Debug for MultiGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiGuard")
            .field("names", &self.names())
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl MultiGuard {
    /// The locks' names, in the multi-lock's order.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().multi_lock(&["n-b", "n-a"]).unwrap().acquire().unwrap();
    /// assert_eq!(guard.names(), ["n-a", "n-b"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.guards.iter().map(Guard::name).collect()
    }

    /// The guard of each lock, in the multi-lock's order (for their
    /// fencing tokens and fenced writes).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().multi_lock(&["g-a", "g-b"]).unwrap().acquire().unwrap();
    /// assert!(guard.guards().iter().all(|g| g.fencing_token() > 0));
    /// ```
    pub fn guards(&self) -> &[Guard] {
        &self.guards
    }

    /// `Ok(())` while every lease is held; otherwise the first lock's error
    /// (`Lost`, or `NotHeld` after a close).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().multi_lock(&["c-a", "c-b"]).unwrap().acquire().unwrap();
    /// guard.check().expect("all held");
    /// ```
    pub fn check(&self) -> Result<()> {
        self.guards.iter().try_for_each(Guard::check)
    }

    /// Whether any lease is lost.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().multi_lock(&["l-a", "l-b"]).unwrap().acquire().unwrap();
    /// assert!(!guard.lost());
    /// ```
    pub fn lost(&self) -> bool {
        self.guards.iter().any(Guard::lost)
    }

    /// How long every lease is certainly still held: the least of them.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().multi_lock(&["r-a", "r-b"]).unwrap().acquire().unwrap();
    /// assert!(guard.remaining() > std::time::Duration::ZERO);
    /// ```
    pub fn remaining(&self) -> Duration {
        self.guards
            .iter()
            .map(Guard::remaining)
            .min()
            .unwrap_or_default()
    }

    /// Releases every lock, the last taken first; the first error if any
    /// release failed (`NotHeld` if a lease had been lost). Every lock is
    /// released whatever the others' outcome.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().multi_lock(&["x-a", "x-b"]).unwrap().acquire().unwrap();
    /// guard.release().unwrap();
    /// ```
    pub fn release(self) -> Result<()> {
        let mut first_error = None;
        for guard in self.guards.into_iter().rev() {
            if let Err(e) = guard.release() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
