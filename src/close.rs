//! Closing a client: what [`Client::close`](crate::Client::close) does to
//! the holds and waits made through it, once, for all four languages.
//!
//! A close is an ending, not a loss: every live hold of the client is
//! released in Redis (in parallel, each release bounded by the command
//! timeout) and its guard then reports "not held" (never "lost", and no
//! lost-lease callback runs); every acquire of the client parked in a wait
//! returns promptly with [`ErrorKind::Closed`], and every later acquire
//! fails the same way at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::sync::Mutex;

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::keys::LockKeys;
use crate::lease::Lease;
use crate::pubsub::Subscriber;
use crate::wait::CancelToken;
use crate::watchdog::Watchdog;

/// At most this many threads release a closing client's holds at once.
const MAX_RELEASE_THREADS: usize = 32;

/// How long a close waits for the client's woken acquires to return before
/// it releases the holds. A parked acquire returns at once; one with an
/// attempt on the wire returns when Redis answers. Releasing while one of
/// them still listens would reserve the lock for it ('handoff', 100 ms)
/// although it is leaving.
const WAITERS_LEAVE_WITHIN: Duration = Duration::from_secs(1);

/// Who releases a closing client's holds: the backend, the watchdog that
/// renews them and the release listeners whose pending UNSUBSCRIBEs a
/// release waits for.
pub(crate) struct Releaser<'a> {
    pub(crate) backend: &'a dyn Backend,
    pub(crate) watchdog: &'a Watchdog,
    pub(crate) subscribers: &'a [Subscriber],
}

/// What a client needs to be closed: the flag, the holds it has handed out
/// and the parkers of its waits in progress.
pub(crate) struct Closing {
    closed: AtomicBool,
    /// The holds acquired through this client in this process (a forked
    /// child starts with none: inherited holds are its parent's).
    holds: PerProcess<Mutex<Vec<Weak<Lease>>>>,
    /// Wakes every parked acquire of the client when it closes (a forked
    /// child gets its own: its parent's waits are not its own).
    waiters: PerProcess<CancelToken>,
}

impl Default for Closing {
    fn default() -> Self {
        Closing {
            closed: AtomicBool::new(false),
            holds: PerProcess::new(|| Mutex::new(Vec::new()), |_| {}),
            waiters: PerProcess::new(CancelToken::new, |_| {}),
        }
    }
}

impl Closing {
    /// Whether the client was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The token whose cancellation wakes the client's parked waits.
    pub(crate) fn waiters(&self) -> &CancelToken {
        self.waiters.get()
    }

    /// The error of an acquire on a closed client.
    pub(crate) fn error(keys: &LockKeys) -> Error {
        Self::error_named(keys.noun(), keys.name())
    }

    /// [`error`](Self::error) for the `noun` ("lock" or "semaphore") `name`.
    pub(crate) fn error_named(noun: &str, name: &str) -> Error {
        Error::new(
            ErrorKind::Closed,
            format!("acquiring {noun} '{name}': the client was closed"),
        )
    }

    /// Records a new hold. The caller checks [`is_closed`](Self::is_closed)
    /// after this: a close either finds the hold here or is seen there.
    pub(crate) fn register(&self, lease: &Arc<Lease>) {
        let mut holds = self.holds.get().lock();
        if holds.len() == holds.capacity() {
            // Forget ended holds before growing: amortised constant time.
            holds.retain(|weak| weak.upgrade().is_some_and(|l| l.is_active()));
        }
        holds.push(Arc::downgrade(lease));
    }

    /// Closes: sets the flag, wakes every wait, takes the waits that gave
    /// up out of their locks' queues and releases every live hold. Closing
    /// again does nothing. Errors: the holds whose release
    /// Redis did not confirm (each is given back in the background as soon
    /// as Redis answers, and its guard already says it is not held).
    pub(crate) fn close(&self, releaser: &Releaser<'_>) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.waiters().cancel();
        // The woken acquires leave (and unsubscribe) before the holds are
        // released: a release while this client's own leaving waiter still
        // counted as a listener reserved the lock for nobody
        // (a_close_never_reserves_the_lock_for_its_own_leaving_waiter).
        self.waiters()
            .wait_until_unregistered(Instant::now() + WAITERS_LEAVE_WITHIN);
        let leases: Vec<Arc<Lease>> = std::mem::take(&mut *self.holds.get().lock())
            .into_iter()
            .filter_map(|weak| weak.upgrade())
            .filter(|lease| lease.mark_closed())
            .collect();
        // The woken waiters handed their leaving to the watchdog thread;
        // the close does it itself before it returns, since a program ends
        // after closing its client and a departure still pending then never
        // happens: a fair queue kept handing the lock to the waiter that was
        // gone until its entry ran out (attack_fair::
        // a_fair_waiter_of_a_closed_client_has_left_the_queue_when_close_returns).
        // A release leaves its own lock's departures first
        // (`leave_before_release`); the others are jobs of their own, in
        // the same parallel round, so a silent Redis costs one timeout.
        let departures: Vec<(LockKeys, String)> = releaser
            .watchdog
            .pending_departures()
            .into_iter()
            .filter(|(keys, _)| !leases.iter().any(|l| l.keys().lock() == keys.lock()))
            .collect();
        let jobs: Vec<Job<'_>> = leases
            .iter()
            .map(Job::Release)
            .chain(departures.iter().map(Job::Leave))
            .collect();
        if jobs.is_empty() {
            return Ok(());
        }
        let release_all = |chunk: &[Job<'_>]| -> Vec<Error> {
            chunk
                .iter()
                .filter_map(|job| match job {
                    Job::Release(lease) => release_closed(releaser, lease).err(),
                    Job::Leave(departure) => {
                        releaser
                            .watchdog
                            .leave_queues_now(std::slice::from_ref(*departure));
                        None
                    }
                })
                .collect()
        };
        // The calling thread does the first share itself: one hold costs
        // no thread.
        let per_thread = jobs.len().div_ceil(MAX_RELEASE_THREADS);
        let mut chunks = jobs.chunks(per_thread);
        let own = chunks.next().unwrap_or_default();
        let (mut failures, theirs) = crate::thread::in_parallel(
            "latchkey-close",
            chunks.map(|chunk| move || release_all(chunk)),
            || release_all(own),
        );
        failures.extend(theirs.into_iter().flatten().flatten());
        match failures.into_iter().next() {
            None => Ok(()),
            Some(first) => Err(first.context(
                "closing the client: a release was not confirmed (it is retried in the background)",
            )),
        }
    }

    /// Releases one hold the close has just taken over, if it is closed
    /// already: for an acquire that finished after the close swept the
    /// holds. Returns whether it did.
    pub(crate) fn release_if_closed(&self, releaser: &Releaser<'_>, lease: &Arc<Lease>) -> bool {
        if !self.is_closed() {
            return false;
        }
        if lease.mark_closed() {
            let _ = release_closed(releaser, lease);
        }
        true
    }
}

/// One thing a close does in Redis before it returns.
enum Job<'a> {
    /// Release a hold of the client.
    Release(&'a Arc<Lease>),
    /// Take a waiter of the client that gave up out of its lock's queue.
    Leave(&'a (LockKeys, String)),
}

/// Releases a hold marked closed: stops its renewal and deletes it in
/// Redis; a release whose outcome is unknown is retried in the background.
fn release_closed(releaser: &Releaser<'_>, lease: &Lease) -> Result<()> {
    let Releaser {
        backend,
        watchdog,
        subscribers,
    } = releaser;
    watchdog.unwatch(lease);
    // As `Guard::release` does: this client's UNSUBSCRIBEs on the channel
    // are confirmed first, so they do not count as listeners.
    for subscriber in subscribers.iter() {
        subscriber.settle(lease.keys().channel());
    }
    // Its own waiters that just gave up leave the queue first: the release
    // must not hand the lock to one of them.
    watchdog.leave_before_release(lease.keys());
    match backend.release(lease.keys(), lease.token(), lease.reentrant()) {
        Ok(_) => Ok(()),
        Err(e) => {
            if matches!(
                e.kind(),
                ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::NoQuorum
            ) {
                watchdog.release_later(
                    lease.keys().clone(),
                    lease.token().to_string(),
                    lease.reentrant(),
                    false,
                    Instant::now() + lease.ttl(),
                );
            }
            Err(e.context(format!(
                "releasing {} '{}'",
                lease.keys().noun(),
                lease.name()
            )))
        }
    }
}
