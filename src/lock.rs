//! [`Lock`], [`LockOptions`] and [`Guard`]: the mutex itself.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Mutex;

use crate::acquire::{Acquisition, Target};
use crate::backend::{AcquireArgs, Attempt, ExtendItem, Queueing, Released};
use crate::close::Closing;
use crate::error::{Error, ErrorKind, Result};
use crate::info::FencedWrite;
use crate::keys::LockKeys;
use crate::lease::{Lease, LostCallback, LostLease, NewLease};
use crate::pubsub::Watch;
use crate::shared::ClientShared;
use crate::wait::{CancelToken, Parker, Wakers};

/// The shortest ttl accepted.
pub const MIN_TTL: Duration = Duration::from_millis(10);
/// The longest ttl accepted (30 days).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a lock behaves: lease length, renewal, reentrancy, retry jitter, and
/// what to do when a lease is lost.
///
/// ```
/// use std::time::Duration;
/// let options = latchkey::LockOptions::new()
///     .ttl(Duration::from_secs(10))
///     .auto_renew(true)
///     .reentrant(false)
///     .retry_jitter(Duration::from_millis(5));
/// assert_eq!(options.get_ttl(), Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct LockOptions {
    ttl: Duration,
    auto_renew: bool,
    reentrant: bool,
    fair: bool,
    pub(crate) retry_jitter: Duration,
    renew_every: Option<Duration>,
    on_lost: Option<LostCallback>,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl: Duration::from_secs(30),
            auto_renew: true,
            reentrant: false,
            fair: false,
            retry_jitter: Duration::from_millis(5),
            renew_every: None,
            on_lost: None,
        }
    }
}

impl fmt::Debug for LockOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockOptions")
            .field("ttl", &self.ttl)
            .field("auto_renew", &self.auto_renew)
            .field("reentrant", &self.reentrant)
            .field("fair", &self.fair)
            .field("retry_jitter", &self.retry_jitter)
            .field("renew_every", &self.renew_every)
            .field("on_lost", &self.on_lost.is_some())
            .finish()
    }
}

impl LockOptions {
    /// The defaults: 30 s ttl, auto-renewed, not reentrant, 5 ms jitter.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new();
    /// assert!(o.get_auto_renew());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Lease length in Redis (10 ms to 30 days). With auto-renew the lease
    /// is renewed every ttl/3; without it, the lock is gone after ttl.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().ttl(std::time::Duration::from_secs(5));
    /// assert_eq!(o.get_ttl().as_secs(), 5);
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Whether the client's watchdog keeps the lease alive while held.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().auto_renew(false);
    /// assert!(!o.get_auto_renew());
    /// ```
    pub fn auto_renew(mut self, on: bool) -> Self {
        self.auto_renew = on;
        self
    }

    /// Whether the same [`Lock`] handle may acquire again while it holds the
    /// lock (each acquire needs its own release). The owner is the handle,
    /// not the thread; each nested acquire is still a hold of its own, with
    /// its own [`Guard`] that Redis checks on release, extend and renewal,
    /// so a stale guard never touches a later hold of the same handle.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().reentrant(true);
    /// assert!(o.get_reentrant());
    /// ```
    pub fn reentrant(mut self, on: bool) -> Self {
        self.reentrant = on;
        self
    }

    /// A fair lock: strict first-come, first-served across processes and
    /// languages. Every waiting acquire queues in Redis on its first attempt
    /// that finds the lock taken; a release (or any fair attempt that finds
    /// the lock free, e.g. after a holder's lease ran out) hands the lock to
    /// the live waiter that queued first, and no fair caller, not even
    /// `try_acquire`, takes a free lock while an earlier waiter is queued.
    ///
    /// A waiter that dies, is stopped, or stops asking keeps its place for
    /// at most 15 s after its last attempt (a live waiter asks again at
    /// least every 5 s); the lock is handed to it meanwhile and waits
    /// for it, so such a waiter holds up the ones behind it for at most
    /// about 20 s. A waiter that times out, is cancelled or whose client
    /// closes leaves the queue at once and passes on a handoff made to it.
    ///
    /// An ordinary lock hands the lock over in the same arrival order, but
    /// its callers take a lock they find free whoever is queued (after a
    /// holder's lease ran out, say), and a waiter that does not take a
    /// handoff within 100 ms loses its place. On one name, fair and
    /// ordinary handles share the queue; only the fair ones never jump it.
    ///
    /// Not with [`reentrant`](Self::reentrant), and not on Redlock (its
    /// masters share no queue): [`Client::lock_with`](crate::Client::lock_with)
    /// refuses both with `InvalidArgument`.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().fair(true);
    /// assert!(o.get_fair());
    /// ```
    pub fn fair(mut self, on: bool) -> Self {
        self.fair = on;
        self
    }

    /// Upper bound of the random pause before retrying when a holder's lease
    /// ran out (all waiters notice that at once). Retries after a release
    /// message are immediate: the message already orders them.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().retry_jitter(std::time::Duration::ZERO);
    /// # let _ = o;
    /// ```
    pub fn retry_jitter(mut self, jitter: Duration) -> Self {
        self.retry_jitter = jitter;
        self
    }

    /// How often the watchdog renews (default: a third of the ttl). A
    /// renewal still goes no later than a third of the lease's ttl before
    /// its validity ends, so that it can come back in time (a period close
    /// to the ttl, or an extend that made the ttl shorter than the period,
    /// would otherwise lose the lease at each renewal).
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().renew_every(std::time::Duration::from_secs(2));
    /// # let _ = o;
    /// ```
    pub fn renew_every(mut self, period: Duration) -> Self {
        self.renew_every = Some(period);
        self
    }

    /// A callback the watchdog thread runs when an auto-renewed lease is
    /// lost. It must not block for long: it delays other renewals.
    ///
    /// ```
    /// let o = latchkey::LockOptions::new().on_lost(|lost| eprintln!("lost {}: {}", lost.name, lost.reason));
    /// # let _ = o;
    /// ```
    pub fn on_lost(mut self, callback: impl Fn(&LostLease) + Send + Sync + 'static) -> Self {
        self.on_lost = Some(Arc::new(callback));
        self
    }

    /// The configured ttl.
    ///
    /// ```
    /// assert_eq!(latchkey::LockOptions::new().get_ttl().as_secs(), 30);
    /// ```
    pub fn get_ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether auto-renewal is on.
    ///
    /// ```
    /// assert!(latchkey::LockOptions::new().get_auto_renew());
    /// ```
    pub fn get_auto_renew(&self) -> bool {
        self.auto_renew
    }

    /// Whether the lock is reentrant.
    ///
    /// ```
    /// assert!(!latchkey::LockOptions::new().get_reentrant());
    /// ```
    pub fn get_reentrant(&self) -> bool {
        self.reentrant
    }

    /// Whether the lock is fair (first come, first served).
    ///
    /// ```
    /// assert!(!latchkey::LockOptions::new().get_fair());
    /// ```
    pub fn get_fair(&self) -> bool {
        self.fair
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_ttl(self.ttl)?;
        if self.fair && self.reentrant {
            return Err(Error::invalid(
                "a lock cannot be both fair and reentrant (a reentrant lock lets its holder's handle jump the queue)",
            ));
        }
        if self.retry_jitter > Duration::from_secs(10) {
            return Err(Error::invalid("the retry jitter must be at most 10 s"));
        }
        if let Some(period) = self.renew_every {
            if period.is_zero() || period >= self.ttl {
                return Err(Error::invalid(format!(
                    "the renewal period must be greater than zero and shorter than the ttl ({:?}); got {period:?}",
                    self.ttl
                )));
            }
        }
        Ok(())
    }
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "a ttl must be between {MIN_TTL:?} and 30 days; got {ttl:?}"
        )));
    }
    Ok(())
}

/// A named distributed lock. Make one with [`Client::lock`](crate::Client::lock).
///
/// A `Lock` is `Send + Sync`; share it or make one per thread. Every
/// acquire returns a [`Guard`] for that hold alone. For a reentrant lock
/// the handle is the owner: two handles for the same name exclude each
/// other, one handle may nest. After `fork()`, a handle used in the child
/// is a different owner from the same handle in the parent.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// use std::time::Duration;
/// let client = latchkey::Client::open(&url)?;
/// let lock = client.lock("orders:42")?;
/// if let Some(guard) = lock.try_acquire()? {
///     // ... critical section ...
///     guard.release()?;
/// }
/// let guard = lock.acquire_timeout(Duration::from_secs(5))?;
/// guard.check()?; // still ours?
/// # Ok(()) }
/// ```
pub struct Lock {
    client: Arc<ClientShared>,
    keys: LockKeys,
    options: LockOptions,
    /// The reentrant owner token and the fork generation it was drawn in
    /// (a forked child draws its own, so it never nests into its parent's
    /// hold). Plain locks use only hold tokens.
    owner: Mutex<(u64, String)>,
    /// Reentrant: this handle's holds in this process (see [`Tenure`]).
    tenure: Arc<Tenure>,
}

/// A reentrant handle's holds in this process, and the order of its
/// acquire attempts and releases: an attempt may nest into the handle's
/// tenure in Redis only while one of its holds is live here and the
/// tenure's token is at least the highest the handle was given, and that
/// is decided and acted on with no release or other attempt of the handle
/// in between. Otherwise the tenure is stale (left by a late release,
/// brought back by an older snapshot, a Redlock master that missed it): it
/// is renewed with a new, higher fencing token, keeping the holds that are
/// live here (a late copy of an attempt never deletes a newer hold).
#[derive(Default)]
struct Tenure {
    state: Mutex<TenureState>,
    /// The handle's acquisitions that wait: when one of them takes the
    /// lock, the others may nest at once, and a release hands the lock to
    /// one queued waiter only, so they are woken here.
    waiters: Wakers,
}

#[derive(Default)]
struct TenureState {
    holds: Vec<std::sync::Weak<Lease>>,
    /// Acquired, guard not yet made: the holds' tokens.
    pending: Vec<String>,
    /// The highest fencing token the handle was ever given: a nested hold
    /// never gets less, and a tenure in Redis below it (brought back by an
    /// older snapshot, or a Redlock master that missed it) is never
    /// nested into.
    highest_token: u64,
}

impl TenureState {
    /// The tokens of the handle's live holds (pending ones included).
    fn live(&mut self) -> Vec<String> {
        self.holds
            .retain(|weak| weak.upgrade().is_some_and(|lease| lease.is_active()));
        self.holds
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|lease| lease.token().to_string())
            .chain(self.pending.iter().cloned())
            .collect()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.keys.name())
            .field("options", &self.options)
            .finish()
    }
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Lock {
    pub(crate) fn new(client: Arc<ClientShared>, keys: LockKeys, options: LockOptions) -> Self {
        Lock {
            client,
            keys,
            options,
            owner: Mutex::new((crate::fork::generation(), new_token())),
            tenure: Arc::default(),
        }
    }

    /// This process's reentrant owner token for the handle.
    fn owner_token(&self) -> String {
        let generation = crate::fork::generation();
        let mut owner = self.owner.lock();
        if owner.0 != generation {
            *owner = (generation, new_token());
        }
        owner.1.clone()
    }

    /// The lock's name.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.lock("a").unwrap().name(), "a");
    /// ```
    pub fn name(&self) -> &str {
        self.keys.name()
    }

    /// The options the lock was made with.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert!(client.lock("a").unwrap().options().get_auto_renew());
    /// ```
    pub fn options(&self) -> &LockOptions {
        &self.options
    }

    /// Blocks until the lock is acquired (or Redis fails).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let guard = client.lock("a").unwrap().acquire().unwrap();
    /// # drop(guard);
    /// ```
    pub fn acquire(&self) -> Result<Guard> {
        self.acquire_with(None, None)
    }

    /// Blocks at most `timeout`; `ErrorKind::Timeout` if the lock stayed held.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let guard = client.lock("a").unwrap().acquire_timeout(std::time::Duration::from_secs(2));
    /// # drop(guard);
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Guard> {
        self.acquire_with(Some(timeout), None)
    }

    /// One attempt, no waiting: `Ok(None)` if someone else holds the lock.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// match client.lock("a").unwrap().try_acquire().unwrap() {
    ///     Some(guard) => drop(guard),
    ///     None => println!("busy"),
    /// }
    /// ```
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        self.acquire_inner(None, true, None)
    }

    /// The general form: wait at most `timeout` (`None`: for ever; zero: one
    /// attempt, `Timeout` if held), and give up with `ErrorKind::Cancelled`
    /// as soon as `cancel` is triggered from another thread.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let cancel = latchkey::CancelToken::new();
    /// let guard = client.lock("a").unwrap().acquire_with(None, Some(&cancel));
    /// # drop(guard);
    /// ```
    pub fn acquire_with(
        &self,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Guard> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started.checked_add(t).unwrap_or(started + MAX_TTL));
        match self.acquire_inner(deadline, false, cancel)? {
            Some(guard) => Ok(guard),
            None => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "lock '{}' is held by another owner; not acquired within {:?}",
                    self.keys.name(),
                    timeout.unwrap_or_default()
                ),
            )),
        }
    }

    fn acquire_inner(
        &self,
        deadline: Option<Instant>,
        try_once: bool,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Guard>> {
        // Every acquisition is a hold of its own, with its own token; the
        // same token is used by every attempt of this acquisition, so a
        // retry finds what an earlier attempt with a lost reply took.
        let hold = new_token();
        let owner = if self.options.reentrant {
            self.owner_token()
        } else {
            hold.clone()
        };
        let acquired = Acquisition::new(self, deadline, try_once, cancel, owner, hold).run()?;
        match acquired {
            // A close that swept the client's holds before this one was
            // registered (see `guard`) has not released it: do it here.
            Some(guard) if guard.released_by_close() => Err(Closing::error(&self.keys)),
            acquired => Ok(acquired),
        }
    }

    fn guard(&self, token: String, fencing_token: u64, sent: Instant) -> Guard {
        // Who wrote with this fencing token, for fenced writes: the hold of
        // a plain lock; the owning handle of a reentrant one, whose nested
        // holds share the token of their uninterrupted tenure.
        // A plain lock's is its lease's token, not kept twice.
        let fence_holder = self.options.reentrant.then(|| self.owner_token());
        let mut guard = Guard::start(
            &self.client,
            &self.keys,
            &self.options,
            token,
            fencing_token,
            sent,
        );
        guard.fence_holder = fence_holder;
        if self.options.reentrant {
            let mut state = self.tenure.state.lock();
            if let Some(i) = state.pending.iter().position(|p| p == guard.lease.token()) {
                state.pending.swap_remove(i);
            }
            state.holds.push(Arc::downgrade(&guard.lease));
            guard.tenure = Some(self.tenure.clone());
        }
        guard
    }
}

impl Target for Lock {
    type Held = Guard;

    fn name(&self) -> &str {
        self.keys.name()
    }

    /// "lock", or "election" for an election's leadership.
    fn noun(&self) -> &'static str {
        self.keys.noun()
    }

    fn attempt(
        &self,
        owner: &str,
        hold: &str,
        waited: bool,
        queue: Queueing<'_>,
    ) -> Result<Attempt> {
        let mut args = AcquireArgs {
            keys: &self.keys,
            owner,
            hold,
            ttl: self.options.ttl,
            reentrant: self.options.reentrant,
            waited,
            nest: false,
            known_token: 0,
            live_holds: &[],
            queue,
            fair: self.options.fair,
            readers: None,
        };
        if !self.options.reentrant {
            return self.client.backend.acquire(&args);
        }
        let mut tenure = self.tenure.state.lock();
        let live = tenure.live();
        args.nest = !live.is_empty();
        args.known_token = tenure.highest_token;
        args.live_holds = &live;
        let attempt = self.client.backend.acquire(&args);
        if let Ok(Attempt::Acquired(token)) = attempt {
            self.tenure.waiters.wake_all();
            if !tenure.pending.iter().any(|p| p == hold) {
                tenure.pending.push(hold.to_string());
            }
            tenure.highest_token = tenure.highest_token.max(token);
        }
        attempt
    }

    fn held(
        &self,
        hold: String,
        fencing_token: u64,
        sent: Instant,
        unheard_since: Option<Instant>,
    ) -> Guard {
        self.guard(hold, fencing_token, sent)
            .unheard_since(unheard_since)
    }

    /// Gives back, in the background, a hold whose acquire had an unknown
    /// outcome (first sent at `first_unknown`): it may still appear.
    fn give_back_later(&self, hold: &str, first_unknown: Instant) {
        self.client.watchdog.release_later(
            self.keys.clone(),
            hold.to_string(),
            self.options.reentrant,
            true,
            first_unknown + self.options.ttl,
        );
    }

    fn give_back_now(&self, held: Guard) {
        // A release that cannot reach Redis gives the hold back in the
        // background (see `Guard::release_now`).
        let _ = held.release();
    }

    /// Listens for release messages of this lock on every server that
    /// publishes them; the listeners wake `parker`, ignoring releases of
    /// the hold `hold` itself and messages for other queued waiters. A
    /// server that cannot be reached is left out (the waiter re-checks by
    /// itself); one that refuses the subscription (the Redis user lacks
    /// the permission: a server error) fails the acquisition.
    fn watch_releases(
        &self,
        parker: &Arc<Parker>,
        seen: u64,
        hold: &str,
        waiter: &str,
    ) -> Result<Vec<Watch>> {
        self.client.watch_releases(
            &[self.keys.channel()],
            parker,
            seen,
            hold,
            waiter,
            &format_args!("acquiring {} '{}'", self.keys.noun(), self.keys.name()),
        )
    }

    fn retry_jitter(&self) -> Duration {
        self.options.retry_jitter
    }

    fn queues_waiters(&self) -> bool {
        self.client.backend.queues_waiters()
    }

    fn fair(&self) -> bool {
        self.options.fair
    }

    fn leave_queue(&self, waiter: &str) {
        // In the background: a cancel or close returns at once, even while
        // Redis does not answer (an entry left behind runs out after its
        // lease).
        self.client
            .watchdog
            .leave_queue_later(self.keys.clone(), waiter.to_string());
    }

    fn handle_waiters(&self) -> Option<&Wakers> {
        self.options.reentrant.then_some(&self.tenure.waiters)
    }

    fn hold_for_next_attempt(&self) -> Option<String> {
        self.client.backend.undoes_failed_attempts().then(new_token)
    }

    fn closing(&self) -> Option<&Closing> {
        Some(&self.client.closing)
    }
}

/// Proof of one hold of a lock. Dropping it releases that hold (best
/// effort, errors ignored); call [`release`](Guard::release) to see the
/// outcome.
///
/// A guard speaks only for its own hold: its token is unique to this
/// acquisition (nested reentrant ones included) and Redis checks it on
/// every release, extend and renewal, so a stale guard can never release,
/// extend or vouch for a later hold. A Guard is `Send + Sync`: it may be
/// released from another thread.
///
/// In a process forked from the one that acquired it, a guard is inert: it
/// reports the lock as not held, its release does nothing in Redis (it
/// returns `NotHeld`) and dropping it does nothing; the parent keeps its
/// hold.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let guard = client.lock("orders:42")?.acquire()?;
/// println!("token {} fencing {} valid for {:?}", guard.token(), guard.fencing_token(), guard.remaining());
/// guard.check()?;
/// guard.release()?;
/// # Ok(()) }
/// ```
pub struct Guard {
    client: Arc<ClientShared>,
    lease: Arc<Lease>,
    /// Who writes with this fencing token (see `Lock::guard`), when
    /// not the lease's own token: a reentrant lock's owning handle.
    fence_holder: Option<String>,
    /// When an attempt of this hold's acquisition was sent that was never
    /// answered: it may still reach Redis after the release and take the
    /// lock for this (released) hold, so the release is followed by a
    /// give-back that watches for it.
    unheard_attempt_since: Option<Instant>,
    /// Reentrant: the handle's tenure, whose order a release keeps.
    tenure: Option<Arc<Tenure>>,
    done: bool,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.lease.name())
            .field("fencing_token", &self.lease.fencing_token())
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl Guard {
    /// The guard of a hold just acquired (of a lock, or permits of a
    /// semaphore, as `keys` say): its lease, renewed by the watchdog when
    /// `options` ask for it, and registered with the client's close.
    pub(crate) fn start(
        client: &Arc<ClientShared>,
        keys: &LockKeys,
        options: &LockOptions,
        token: String,
        fencing_token: u64,
        sent: Instant,
    ) -> Guard {
        let lease = Lease::new(NewLease {
            keys: keys.clone(),
            token,
            fencing_token,
            reentrant: options.reentrant,
            ttl: options.ttl,
            sent,
            renew_every: options.renew_every,
            on_lost: options.on_lost.clone(),
        });
        if options.auto_renew {
            client.watchdog.watch(&lease, sent);
        }
        client.closing.register(&lease);
        Guard {
            client: client.clone(),
            lease,
            fence_holder: None,
            unheard_attempt_since: None,
            tenure: None,
            done: false,
        }
    }

    /// The keys of the lock this hold is of.
    pub(crate) fn keys(&self) -> &LockKeys {
        self.lease.keys()
    }

    /// Stops renewing and reporting this hold before a script ends it as
    /// part of another operation (a downgrade), as a release does: a
    /// renewal in flight that finds it gone then reports nothing. The
    /// operation ends the guard either way: `handed_over`, or `mark_lost`.
    pub(crate) fn handing_over(&self) {
        let _ = self.lease.mark_released();
        self.client.watchdog.unwatch(&self.lease);
    }

    /// Records that Redis said this hold is gone (a refused downgrade):
    /// from then on `check()` says `Lost`, as after a refused `extend`.
    pub(crate) fn mark_lost(&self, reason: String) {
        self.lease.mark_lost_after_release(reason);
    }

    /// Whether this hold was handed over to another (see `handed_over`).
    pub(crate) fn ended(&self) -> bool {
        self.done
    }

    /// Ends this hold here after a script released it in Redis as part of
    /// another operation (a read-write lock's downgrade): no renewal, no
    /// release of its own; the guard reads as released.
    pub(crate) fn handed_over(&mut self) {
        self.done = true;
        let _ = self.lease.mark_released();
        self.client.watchdog.unwatch(&self.lease);
        for subscriber in &self.client.subscribers {
            subscriber.settle(self.lease.keys().channel());
        }
        if let Some(since) = self.unheard_attempt_since {
            // As after a release: an unanswered attempt of this hold's
            // acquisition may still reach Redis and take the lock for this
            // ended hold; the give-back watches for it.
            self.give_back_later(true, since + self.lease.ttl());
        }
    }

    /// Records that an attempt of this hold's acquisition, sent at
    /// `since`, was never answered (see `unheard_attempt_since`).
    pub(crate) fn unheard_since(mut self, since: Option<Instant>) -> Guard {
        self.unheard_attempt_since = since;
        self
    }

    /// Whether a close of the client swept its holds before this one was
    /// registered; if so, this hold is released now (see `Lock::acquire_inner`).
    pub(crate) fn released_by_close(&self) -> bool {
        self.client
            .closing
            .release_if_closed(&self.client.releaser(), &self.lease)
    }

    /// The lock's name.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// assert_eq!(guard.name(), "a");
    /// ```
    pub fn name(&self) -> &str {
        self.lease.name()
    }

    /// This hold's token, which Redis checks (32 hex digits, from the OS
    /// random source; for a semaphore's permits, their number, ':' and the
    /// 32 digits); unique per acquisition, and the token a lost-lease
    /// report names.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// assert_eq!(guard.token().len(), 32);
    /// ```
    pub fn token(&self) -> &str {
        self.lease.token()
    }

    /// The fencing token: strictly greater than every token issued before
    /// for this name. Pass it to the resource you protect.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// assert!(guard.fencing_token() > 0);
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.lease.fencing_token()
    }

    /// How long the lease is certainly still ours, on the local monotonic
    /// clock: ttl minus the time since the acquire (or last renewal) was
    /// sent, minus a drift allowance. Zero once lost or expired.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// assert!(guard.remaining() > std::time::Duration::ZERO);
    /// ```
    pub fn remaining(&self) -> Duration {
        self.lease.remaining()
    }

    /// Whether the lease is lost: renewal found it gone or taken, or its
    /// validity ran out. A hold ended by [`Client::close`](crate::Client::close)
    /// is not lost (`check()` says `NotHeld`).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// assert!(!guard.lost());
    /// ```
    pub fn lost(&self) -> bool {
        self.lease.lost_reason().is_some() && !self.lease.closed() && !self.done
    }

    /// `Ok(())` while the lease is held, `Err(Lost)` with the reason once
    /// not; `Err(NotHeld)` once [`Client::close`](crate::Client::close)
    /// released it, or a [`RwLock::downgrade`](crate::RwLock::downgrade)
    /// ended it.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// guard.check().expect("still ours");
    /// ```
    pub fn check(&self) -> Result<()> {
        match self.lease.lost_reason() {
            None => Ok(()),
            // Closing the client (or a downgrade) ended the hold: an
            // ending, not a loss.
            Some(reason) if self.lease.closed() || self.done => {
                Err(Error::new(ErrorKind::NotHeld, reason))
            }
            Some(reason) => Err(Error::new(ErrorKind::Lost, reason)),
        }
    }

    /// Makes the lease last at least `ttl` from now, if it is still ours;
    /// `NotHeld` if not (the lease is then reported lost). A lease that
    /// already has more than `ttl` left keeps it: Redis never shortens a
    /// lease (so a late extension or renewal can never cut short a lease a
    /// guard still counts on), and neither does the guard, so
    /// [`remaining`](Guard::remaining), the auto-renewal schedule and
    /// Redis's expiry stay in agreement. A longer `ttl` becomes the
    /// lease's ttl: auto-renewal continues with it, every third of it. To
    /// add time to what is left, as redis-py's `extend` does, use
    /// [`extend_by`](Guard::extend_by).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// use std::time::Duration;
    /// guard.extend(Duration::from_secs(60)).unwrap();
    /// assert!(guard.remaining() > Duration::from_secs(50));
    /// guard.extend(Duration::from_secs(1)).unwrap(); // still ours; keeps its 60 s
    /// assert!(guard.remaining() > Duration::from_secs(50));
    /// ```
    pub fn extend(&self, ttl: Duration) -> Result<()> {
        check_ttl(ttl)?;
        self.extend_to(ttl)
    }

    /// Adds `additional` to the time the lease has left (redis-py's
    /// `extend(additional_time)`): afterwards [`remaining`](Guard::remaining)
    /// is what it was plus `additional`, less the drift allowance.
    /// `NotHeld` if the lease is no longer ours; `InvalidArgument` if the
    /// lease would exceed 30 days. The new length becomes the lease's ttl.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// use std::time::Duration;
    /// let before = guard.remaining();
    /// guard.extend_by(Duration::from_secs(30)).unwrap();
    /// assert!(guard.remaining() > before + Duration::from_secs(25));
    /// ```
    pub fn extend_by(&self, additional: Duration) -> Result<()> {
        let ttl = self.lease.remaining().saturating_add(additional);
        if ttl > MAX_TTL {
            return Err(Error::invalid(format!(
                "a lease can be extended to 30 days at most; {additional:?} more would make it {ttl:?}"
            )));
        }
        self.extend_to(ttl.max(MIN_TTL))
    }

    fn extend_to(&self, ttl: Duration) -> Result<()> {
        // An inherited guard says why here without touching a mutex.
        if let Some(reason) = self.lease.lost_reason() {
            return Err(Error::new(
                ErrorKind::NotHeld,
                format!("cannot extend: {reason}"),
            ));
        }
        let sent = Instant::now();
        let outcome = self
            .client
            .backend
            .extend(&[ExtendItem::of(&self.lease, ttl)])?;
        let extended = outcome.into_iter().next().unwrap_or(Ok(false))?;
        if extended && self.lease.renewed(sent, ttl) {
            // The next renewal follows the lease's new ttl and validity.
            self.client.watchdog.reschedule(&self.lease);
            return Ok(());
        }
        let reason = if extended {
            // Redis kept the hold, but the lease had already run out here
            // (check() may have said so): it stays lost; give the hold back.
            self.give_back_later(false, Instant::now() + ttl);
            format!(
                "the lease on {} '{}' ran out before the extension was confirmed",
                self.lease.keys().noun(),
                self.name()
            )
        } else {
            format!(
                "{} '{}' expired or is held by another owner",
                self.lease.keys().noun(),
                self.name()
            )
        };
        self.lease.mark_lost(reason.clone(), false);
        Err(Error::new(
            ErrorKind::NotHeld,
            format!("cannot extend: {reason}"),
        ))
    }

    /// Releases the lock and says whether it was still ours: `NotHeld` if
    /// the lease had been lost (someone else may have held the lock since).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// guard.release().unwrap();
    /// ```
    pub fn release(mut self) -> Result<()> {
        if self.done {
            // Handed over to another hold (a downgrade): nothing left here.
            return Err(Error::new(
                ErrorKind::NotHeld,
                format!(
                    "{} '{}': this hold has already ended",
                    self.lease.keys().noun(),
                    self.name()
                ),
            ));
        }
        self.done = true;
        self.release_now()
    }

    /// Asks Redis whether this hold still owns the lock (one round trip;
    /// Redlock: a quorum of masters). Unlike [`check`](Guard::check), which
    /// is local, this sees a force-unlock or an expiry at once; a lease that
    /// is lost or released locally answers `false` without asking.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let guard = latchkey::Client::open(&url).unwrap().lock("a").unwrap().acquire().unwrap();
    /// assert!(guard.confirm().unwrap());
    /// ```
    pub fn confirm(&self) -> Result<bool> {
        if self.lease.lost_reason().is_some() {
            return Ok(false);
        }
        self.client.backend.hold_exists(
            self.lease.keys(),
            self.lease.token(),
            self.lease.reentrant(),
        )
    }

    /// Writes `value` to `resource` fenced by this hold's token (see
    /// [`Client::fenced_write`](crate::Client::fenced_write)): refused when
    /// the resource has seen a higher token, or an equal token from another
    /// holder; accepted again for this hold (and, for a reentrant lock, for
    /// the other holds of the same handle's tenure, which share its token).
    /// `NotHeld`, writing nothing, for a guard inherited across `fork()`
    /// (its holder identity is the parent's).
    ///
    /// ```
    /// # fn main() -> latchkey::Result<()> {
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url)?;
    /// let guard = client.lock("ledger")?.acquire()?;
    /// assert!(guard.fenced_write("ledger-state", b"v1")?.written);
    /// assert!(guard.fenced_write("ledger-state", b"v2")?.written);
    /// # Ok(()) }
    /// ```
    pub fn fenced_write(&self, resource: &str, value: &[u8]) -> Result<FencedWrite> {
        // The holder identity would make the resource take a forked child's
        // write as its parent's own: an inherited guard writes nothing.
        if self.lease.inherited() {
            let reason = self.lease.lost_reason().unwrap_or_default();
            return Err(Error::new(
                ErrorKind::NotHeld,
                format!("cannot write to '{resource}': {reason}"),
            ));
        }
        self.client.fenced_write(
            resource,
            self.lease.fencing_token(),
            self.fence_holder
                .as_deref()
                .unwrap_or_else(|| self.lease.token()),
            value,
        )
    }

    /// Gives this hold back in the background (see `Watchdog::release_later`).
    fn give_back_later(&self, may_appear_later: bool, until: Instant) {
        self.client.watchdog.release_later(
            self.lease.keys().clone(),
            self.lease.token().to_string(),
            self.lease.reentrant(),
            may_appear_later,
            until,
        );
    }

    fn release_now(&self) -> Result<()> {
        if let Some(reason) = self.lease.lost_reason().filter(|_| self.lease.inherited()) {
            return Err(Error::new(ErrorKind::NotHeld, reason));
        }
        if self.lease.closed() {
            // Closing the client released it already; an acquire attempt
            // that was never answered may still take it for this hold.
            if let Some(since) = self.unheard_attempt_since {
                self.give_back_later(true, since + self.lease.ttl());
            }
            let reason = self.lease.lost_reason().unwrap_or_default();
            return Err(Error::new(ErrorKind::NotHeld, reason));
        }
        // A reentrant release waits for the handle's attempt in flight, so
        // that attempt never judges the tenure while this hold is half gone.
        let _order = self.tenure.as_ref().map(|t| t.state.lock());
        let expired = self.lease.lost_reason();
        let lost = self.lease.mark_released().or(expired);
        self.client.watchdog.unwatch(&self.lease);
        // This client's own waiters that just left (this hold's acquisition
        // among them) must not count as listeners: their release would
        // reserve the lock for nobody (a_release_with_nobody_waiting_leaves_no_reservation).
        for subscriber in &self.client.subscribers {
            subscriber.settle(self.lease.keys().channel());
        }
        // Likewise, its waiters of this lock that just gave up leave the
        // queue first, so the release hands the lock to a live waiter.
        self.client.watchdog.leave_before_release(self.lease.keys());
        let outcome = self.client.backend.release(
            self.lease.keys(),
            self.lease.token(),
            self.lease.reentrant(),
        );
        if let Some(since) = self.unheard_attempt_since {
            // An unanswered attempt of this hold's acquisition may still
            // reach Redis and take the lock for this released hold: watch
            // for it (after this release, which it must not race). This
            // also gives the hold back if the release itself went unheard.
            self.give_back_later(true, since + self.lease.ttl());
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                if self.unheard_attempt_since.is_none()
                    && matches!(
                        e.kind(),
                        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::NoQuorum
                    )
                {
                    // The release may not have run (or may run later): give
                    // the hold back in the background as soon as Redis
                    // answers, rather than leave it held for its whole ttl.
                    self.give_back_later(false, Instant::now() + self.lease.ttl());
                }
                return Err(e);
            }
        };
        if crate::chaos::variant("stale-release") && matches!(outcome, Released::NotOwner) {
            if let Ok(Some(holder)) = self.client.backend.inspect(self.lease.keys(), 0) {
                let _ = self
                    .client
                    .backend
                    .force_unlock(self.lease.keys(), &holder.owner_token);
            }
        }
        match (outcome, lost) {
            (Released::NotOwner, reason) => Err(Error::new(
                ErrorKind::NotHeld,
                reason.unwrap_or_else(|| {
                    format!(
                        "{} '{}' was no longer held by this owner (it expired or was taken)",
                        self.lease.keys().noun(),
                        self.name()
                    )
                }),
            )),
            (_, Some(reason)) => Err(Error::new(
                ErrorKind::NotHeld,
                format!(
                    "{reason}; the {} was released now, but it was not held throughout",
                    self.lease.keys().noun()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done && !self.lease.inherited() {
            let _ = self.release_now();
        }
    }
}
