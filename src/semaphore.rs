//! A counting semaphore whose permits are leases: each acquisition takes
//! one or more of its permits for a ttl, renewed by the client's watchdog
//! like a lock's lease, so a crashed holder's permits come back once its
//! lease ends (Redisson's `PermitExpirableSemaphore`, not its plain
//! semaphore, whose permits a crash loses for good). The acquire loop, the
//! guard, renewal, lost reports, close and fork are the lock's; what is
//! its own is the Redis layout (a lease set, see `src/keys.rs`) and its
//! scripts (`src/scripts/permit_*.lua`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acquire::{Acquisition, Target};
use crate::backend::{Attempt, PermitArgs, Queueing};
use crate::close::Closing;
use crate::error::{Error, ErrorKind, Result};
use crate::info::{SemaphoreInfo, MAX_REPORTED_WAITERS};
use crate::keys::LockKeys;
use crate::lock::{Guard, LockOptions, MAX_TTL};
use crate::pubsub::Watch;
use crate::shared::ClientShared;
use crate::wait::{CancelToken, Parker};

/// The most permits a semaphore may have.
pub const MAX_PERMITS: u32 = 1_000_000;

/// A named semaphore of `size` permits, shared by every process that uses
/// the name. Make one with [`Client::semaphore`](crate::Client::semaphore).
///
/// Every acquisition takes one or more permits as a lease of its own and
/// returns a [`Guard`] for it: the lease is renewed while held (unless
/// [`LockOptions::auto_renew`] is off), a loss is reported as a lock's is
/// (`Guard::check`, `Guard::lost`, the `on_lost` callback), and a holder
/// that dies gives its permits back when its lease ends. Each hold gets a
/// fencing token, increasing per semaphore.
///
/// The size belongs to the handle: every attempt counts the permits in use
/// against the size of the handle that makes it. To change a semaphore's
/// size, make handles with the new one; holders above it keep their
/// permits until they release them, and nobody takes more until the
/// permits in use are below the new size. Handles of one name should agree
/// on the size apart from such a change.
///
/// Waiters are woken by every release (pub/sub, no polling); a waiter for
/// many permits may wait behind a stream of waiters for fewer (there is
/// no queue yet).
///
/// Semaphores need one source of truth: one server, Sentinel or Cluster.
/// Over Redlock's independent masters a majority per hold does not bound
/// the holders, and a semaphore is refused there.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// use std::time::Duration;
/// let client = latchkey::Client::open(&url)?;
/// let connections = client.semaphore("db-connections", 3)?;
/// let permit = connections.acquire(1)?;
/// assert_eq!(connections.available()?, 2);
/// // ... use one of the three connections ...
/// permit.release()?;
/// # Ok(()) }
/// ```
pub struct Semaphore {
    client: Arc<ClientShared>,
    keys: LockKeys,
    size: u32,
    options: LockOptions,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.keys.name())
            .field("size", &self.size)
            .field("options", &self.options)
            .finish()
    }
}

impl Semaphore {
    pub(crate) fn new(
        client: Arc<ClientShared>,
        keys: LockKeys,
        size: u32,
        options: LockOptions,
    ) -> Result<Self> {
        options.validate()?;
        if options.get_reentrant() || options.get_fair() {
            return Err(Error::invalid(
                "a semaphore's permits cannot be reentrant or fair (options for locks)",
            ));
        }
        if size == 0 || size > MAX_PERMITS {
            return Err(Error::invalid(format!(
                "a semaphore must have 1 to {MAX_PERMITS} permits; got {size}"
            )));
        }
        Ok(Semaphore {
            client,
            keys,
            size,
            options,
        })
    }

    /// The semaphore's name.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.semaphore("pool", 4).unwrap().name(), "pool");
    /// ```
    pub fn name(&self) -> &str {
        self.keys.name()
    }

    /// The permits in all, as this handle counts them.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.semaphore("pool", 4).unwrap().size(), 4);
    /// ```
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The options each hold's lease is made with.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert!(client.semaphore("pool", 4).unwrap().options().get_auto_renew());
    /// ```
    pub fn options(&self) -> &LockOptions {
        &self.options
    }

    /// Blocks until `permits` permits are taken (or Redis fails).
    /// `InvalidArgument` for 0 permits or more than the size.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let guard = client.semaphore("pool-a", 4).unwrap().acquire(2).unwrap();
    /// # drop(guard);
    /// ```
    pub fn acquire(&self, permits: u32) -> Result<Guard> {
        self.acquire_with(permits, None, None)
    }

    /// Blocks at most `timeout`; `ErrorKind::Timeout` if too few permits
    /// came free.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// use std::time::Duration;
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let one = client.semaphore("pool-b", 1).unwrap();
    /// let held = one.acquire(1).unwrap();
    /// let err = one.acquire_timeout(1, Duration::from_millis(50)).unwrap_err();
    /// assert_eq!(err.kind(), latchkey::ErrorKind::Timeout);
    /// # drop(held);
    /// ```
    pub fn acquire_timeout(&self, permits: u32, timeout: Duration) -> Result<Guard> {
        self.acquire_with(permits, Some(timeout), None)
    }

    /// One attempt, no waiting: `Ok(None)` if too few permits are free.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// match client.semaphore("pool-c", 2).unwrap().try_acquire(1).unwrap() {
    ///     Some(guard) => drop(guard),
    ///     None => println!("all permits taken"),
    /// }
    /// ```
    pub fn try_acquire(&self, permits: u32) -> Result<Option<Guard>> {
        self.acquire_inner(permits, None, true, None)
    }

    /// The general form: wait at most `timeout` (`None`: for ever; zero:
    /// one attempt, `Timeout` if too few are free), and give up with
    /// `ErrorKind::Cancelled` as soon as `cancel` is triggered.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let cancel = latchkey::CancelToken::new();
    /// let guard = client.semaphore("pool-d", 2).unwrap().acquire_with(1, None, Some(&cancel));
    /// # drop(guard);
    /// ```
    pub fn acquire_with(
        &self,
        permits: u32,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Guard> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started.checked_add(t).unwrap_or(started + MAX_TTL));
        match self.acquire_inner(permits, deadline, false, cancel)? {
            Some(guard) => Ok(guard),
            None => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "semaphore '{}' had fewer than {permits} free permits of {} within {:?}",
                    self.keys.name(),
                    self.size,
                    timeout.unwrap_or_default()
                ),
            )),
        }
    }

    fn acquire_inner(
        &self,
        permits: u32,
        deadline: Option<Instant>,
        try_once: bool,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Guard>> {
        if permits == 0 || permits > self.size {
            return Err(Error::invalid(format!(
                "semaphore '{}' has {} permits; cannot take {permits}",
                self.keys.name(),
                self.size
            )));
        }
        let request = PermitRequest {
            semaphore: self,
            permits,
        };
        let hold = request.new_hold();
        let acquired =
            Acquisition::new(&request, deadline, try_once, cancel, hold.clone(), hold).run()?;
        match acquired {
            Some(guard) if guard.released_by_close() => Err(Closing::error(&self.keys)),
            acquired => Ok(acquired),
        }
    }

    /// The permits free now, as this handle counts them: its size less
    /// the permits in use (0 when more are in use than it has).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let pool = client.semaphore("pool-e", 5).unwrap();
    /// let held = pool.acquire(3).unwrap();
    /// assert_eq!(pool.available().unwrap(), 2);
    /// # drop(held);
    /// ```
    pub fn available(&self) -> Result<u32> {
        let in_use = self.client.backend.inspect_permits(&self.keys, 0)?.in_use;
        Ok(u64::from(self.size).saturating_sub(in_use) as u32)
    }

    /// The permits in use and who holds them (at most
    /// [`MAX_REPORTED_WAITERS`] holds listed).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let pool = client.semaphore("pool-f", 5).unwrap();
    /// assert_eq!(pool.inspect().unwrap().in_use, 0);
    /// ```
    pub fn inspect(&self) -> Result<SemaphoreInfo> {
        self.client
            .backend
            .inspect_permits(&self.keys, MAX_REPORTED_WAITERS)
    }

    /// Takes every permit away from whoever holds it and wakes the waiters;
    /// whether any was held. The holders find their leases lost at their
    /// next renewal. For operators: a holder that still works believes it
    /// holds a permit.
    ///
    /// It names each hold it finds (one script per hold): a late copy of
    /// one of its calls (a retry whose first attempt ran, a command delayed
    /// in the network) removes only the hold it names, never one taken
    /// after the force. A hold taken while it runs may be left in place.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let pool = client.semaphore("pool-g", 2).unwrap();
    /// let held = pool.acquire(1).unwrap();
    /// assert!(pool.force_release_all().unwrap());
    /// assert_eq!(pool.available().unwrap(), 2);
    /// # drop(held);
    /// ```
    pub fn force_release_all(&self) -> Result<bool> {
        // Never '' ("whoever holds it"): a late copy of that would delete
        // the holds taken after the force (tests/attack_semaphore.rs).
        let seen = self
            .client
            .backend
            .inspect_permits(&self.keys, usize::MAX)?;
        let mut removed = false;
        for holder in &seen.holders {
            removed |= self
                .client
                .backend
                .force_unlock(&self.keys, &holder.token)?;
        }
        Ok(removed)
    }
}

/// One acquisition of `permits` permits: what the acquire loop acquires.
struct PermitRequest<'a> {
    semaphore: &'a Semaphore,
    permits: u32,
}

impl PermitRequest<'_> {
    /// A new hold's token: its permits, ':', a random part (the scripts
    /// count a hold's permits from it).
    fn new_hold(&self) -> String {
        format!("{}:{}", self.permits, uuid::Uuid::new_v4().simple())
    }
}

impl Target for PermitRequest<'_> {
    type Held = Guard;

    fn name(&self) -> &str {
        self.semaphore.keys.name()
    }

    fn attempt(
        &self,
        _owner: &str,
        hold: &str,
        _waited: bool,
        _queue: Queueing<'_>,
    ) -> Result<Attempt> {
        let semaphore = self.semaphore;
        semaphore.client.backend.acquire_permits(&PermitArgs {
            keys: &semaphore.keys,
            hold,
            ttl: semaphore.options.get_ttl(),
            size: semaphore.size,
            permits: self.permits,
        })
    }

    fn held(
        &self,
        hold: String,
        fencing_token: u64,
        sent: Instant,
        unheard_since: Option<Instant>,
    ) -> Guard {
        let semaphore = self.semaphore;
        Guard::start(
            &semaphore.client,
            &semaphore.keys,
            &semaphore.options,
            hold,
            fencing_token,
            sent,
        )
        .unheard_since(unheard_since)
    }

    fn watch_releases(
        &self,
        parker: &Arc<Parker>,
        seen: u64,
        hold: &str,
        waiter: &str,
    ) -> Result<Vec<Watch>> {
        let semaphore = self.semaphore;
        semaphore.client.watch_releases(
            &[semaphore.keys.channel()],
            parker,
            seen,
            hold,
            waiter,
            &format_args!("acquiring permits of semaphore '{}'", semaphore.keys.name()),
        )
    }

    fn give_back_later(&self, hold: &str, first_unknown: Instant) {
        let semaphore = self.semaphore;
        semaphore.client.watchdog.release_later(
            semaphore.keys.clone(),
            hold.to_string(),
            false,
            true,
            first_unknown + semaphore.options.get_ttl(),
        );
    }

    fn give_back_now(&self, held: Guard) {
        let _ = held.release();
    }

    fn retry_jitter(&self) -> Duration {
        self.semaphore.options.retry_jitter
    }

    fn noun(&self) -> &'static str {
        self.semaphore.keys.noun()
    }

    fn hold_for_next_attempt(&self) -> Option<String> {
        self.semaphore
            .client
            .backend
            .undoes_failed_attempts()
            .then(|| self.new_hold())
    }

    fn closing(&self) -> Option<&Closing> {
        Some(&self.semaphore.client.closing)
    }
}
