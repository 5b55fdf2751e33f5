//! The locks and condition variables of the library, built on `std::sync`
//! so that a forked child inherits nothing it cannot use.
//!
//! Why not parking_lot: it keeps one process-wide table of parked threads.
//! A child forked while any library thread is parked (an idle watchdog, a
//! release listener, a waiter) inherits that table listing threads it does
//! not have, and its own waits and wake-ups then spin, hang or corrupt the
//! heap (parking_lot issue 515). On Linux std's `Mutex`, `Condvar` and
//! `RwLock` are a futex word each, inside the value itself: nothing outside
//! it, so a lock that no thread held at the fork works in the child. (One
//! that a parent thread held stays held in the child, with either crate:
//! `fork::PerProcess` gives the child fresh values for those.)
//!
//! The API is parking_lot's shape, so call sites read the same: `lock()`
//! returns the guard (a panic while a lock was held does not poison it: the
//! state each lock guards stays consistent between statements), and a
//! condition variable waits with `&mut guard`.

use std::sync::{PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// A mutual exclusion lock that ignores poisoning.
#[derive(Default)]
pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

/// The guard of a [`Mutex`]; a [`Condvar`] wait unlocks and relocks it.
pub(crate) struct MutexGuard<'a, T: ?Sized> {
    /// `None` only while a [`Condvar`] wait has lent it to std.
    inner: Option<std::sync::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> Mutex<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            inner: Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// The guard if no one holds the lock, `None` at once otherwise.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(inner) => Some(MutexGuard { inner: Some(inner) }),
            Err(TryLockError::Poisoned(poisoned)) => Some(MutexGuard {
                inner: Some(poisoned.into_inner()),
            }),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.try_lock() {
            Some(guard) => f.debug_tuple("Mutex").field(&&*guard).finish(),
            None => f.write_str("Mutex(<locked>)"),
        }
    }
}

impl<T: ?Sized> MutexGuard<'_, T> {
    fn std(&self) -> &std::sync::MutexGuard<'_, T> {
        // Only a Condvar wait empties it, and it puts it back before
        // returning; a panic in std's wait cannot leave it empty either,
        // since std's wait does not panic (poisoning is mapped away).
        match &self.inner {
            Some(inner) => inner,
            None => unreachable!("a MutexGuard is only empty inside Condvar::wait"),
        }
    }
}

impl<T: ?Sized> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.std()
    }
}

impl<T: ?Sized> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.inner {
            Some(inner) => inner,
            None => unreachable!("a MutexGuard is only empty inside Condvar::wait"),
        }
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self.std(), f)
    }
}

/// Whether a timed [`Condvar`] wait ended because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    pub(crate) fn timed_out(self) -> bool {
        self.0
    }
}

/// A condition variable whose waits take `&mut MutexGuard`, as
/// parking_lot's do. Wake-ups may be spurious: wait in a loop.
#[derive(Default, Debug)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }

    /// Unlocks, waits for a notification, relocks.
    pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        self.with_guard(guard, |inner| {
            (
                self.0.wait(inner).unwrap_or_else(PoisonError::into_inner),
                (),
            )
        });
    }

    /// As [`wait`](Self::wait), for at most `timeout`.
    pub(crate) fn wait_for<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        self.with_guard(guard, |inner| {
            let (inner, result) = self
                .0
                .wait_timeout(inner, timeout)
                .unwrap_or_else(PoisonError::into_inner);
            (inner, WaitTimeoutResult(result.timed_out()))
        })
    }

    /// As [`wait`](Self::wait), until `deadline` at the latest (a deadline
    /// already past returns at once, timed out).
    pub(crate) fn wait_until<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => self.wait_for(guard, left),
            _ => WaitTimeoutResult(true),
        }
    }

    /// Lends the std guard inside `guard` to `wait` and puts back the one
    /// it returns.
    fn with_guard<'a, T, R>(
        &self,
        guard: &mut MutexGuard<'a, T>,
        wait: impl FnOnce(std::sync::MutexGuard<'a, T>) -> (std::sync::MutexGuard<'a, T>, R),
    ) -> R {
        let Some(inner) = guard.inner.take() else {
            unreachable!("a MutexGuard is only empty inside Condvar::wait")
        };
        let (inner, result) = wait(inner);
        guard.inner = Some(inner);
        result
    }
}

/// A reader-writer lock that ignores poisoning.
#[derive(Default, Debug)]
pub(crate) struct RwLock<T: ?Sized>(std::sync::RwLock<T>);

impl<T> RwLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        RwLock(std::sync::RwLock::new(value))
    }
}

impl<T: ?Sized> RwLock<T> {
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_unlocks_and_relocks_and_a_notify_wakes_it() {
        let shared = Arc::new((Mutex::new(false), Condvar::new()));
        let other = Arc::clone(&shared);
        let setter = std::thread::spawn(move || {
            *other.0.lock() = true;
            other.1.notify_all();
        });
        let mut ready = shared.0.lock();
        while !*ready {
            shared.1.wait(&mut ready);
        }
        drop(ready);
        setter.join().unwrap();
    }

    #[test]
    fn timed_waits_report_a_timeout() {
        let lock = Mutex::new(0);
        let cond = Condvar::new();
        let mut guard = lock.lock();
        assert!(cond.wait_until(&mut guard, Instant::now()).timed_out());
        assert!(cond
            .wait_for(&mut guard, Duration::from_millis(1))
            .timed_out());
        *guard += 1;
        drop(guard);
        assert_eq!(lock.into_inner(), 1, "the guard still guards after a wait");
    }

    #[test]
    fn a_panic_while_locked_does_not_poison() {
        let lock = Arc::new(Mutex::new(1));
        let other = Arc::clone(&lock);
        let _ = std::thread::spawn(move || {
            let _held = other.lock();
            panic!("while holding the lock");
        })
        .join();
        assert_eq!(*lock.lock(), 1);
        assert!(lock.try_lock().is_some());
    }

    /// What parking_lot could not do (its table of parked threads is
    /// process-wide): children forked while other threads are parked on
    /// these primitives, with and without a timeout, park and wake threads
    /// of their own. Each child must finish within the bound.
    #[test]
    fn children_forked_while_threads_are_parked_park_and_wake_their_own() {
        let parked = Arc::new((Mutex::new(false), Condvar::new()));
        let sleepers: Vec<_> = (0..4)
            .map(|i| {
                let parked = Arc::clone(&parked);
                std::thread::spawn(move || {
                    let mut done = parked.0.lock();
                    while !*done {
                        if i % 2 == 0 {
                            parked.1.wait(&mut done);
                        } else {
                            let _ = parked.1.wait_for(&mut done, Duration::from_millis(7));
                        }
                    }
                })
            })
            .collect();
        for _ in 0..30 {
            // SAFETY: the child uses only this module's primitives and
            // threads of its own, then leaves with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                // Two threads take turns: each one that gets the lock
                // counts, wakes the other and waits for it.
                fn take_turns(turns: &(Mutex<u32>, Condvar)) {
                    let mut count = turns.0.lock();
                    while *count < 100 {
                        *count += 1;
                        turns.1.notify_all();
                        let deadline = Instant::now() + Duration::from_secs(5);
                        let _ = turns.1.wait_until(&mut count, deadline);
                    }
                    turns.1.notify_all();
                }
                // The other thread comes from crate::thread: a std thread
                // started in a child can spin for ever (see that module).
                let turns = (Mutex::new(0u32), Condvar::new());
                let ((), other) =
                    crate::thread::in_parallel("turns", [|| take_turns(&turns)], || {
                        take_turns(&turns)
                    });
                let code = i32::from(other != vec![Some(())]);
                // SAFETY: ends the child without running the parent's
                // exit handlers.
                unsafe { libc::_exit(code) };
            }
            let started = Instant::now();
            let mut status = 0;
            loop {
                // SAFETY: waits for our own child.
                let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if got == pid {
                    break;
                }
                if started.elapsed() > Duration::from_secs(30) {
                    // SAFETY: kills our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    panic!("a forked child hung");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "a forked child failed: {status}"
            );
        }
        *parked.0.lock() = true;
        parked.1.notify_all();
        for sleeper in sleepers {
            sleeper.join().unwrap();
        }
    }

    #[test]
    fn try_lock_fails_at_once_while_held() {
        let lock = Mutex::new(());
        let held = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(held);
        assert!(lock.try_lock().is_some());
    }
}
