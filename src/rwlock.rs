//! A read-write lock: many readers or one writer. The writer's hold is a
//! plain lock (its acquire loop, queue, renewal, lost reports, close and
//! fork are the lock's) that is also held while any reader's lease lasts;
//! the readers' holds are leases in a lease set, as a semaphore's permits
//! are, each its own (a reader that dies frees only its own share, after
//! its ttl). Writers are preferred: a waiting writer stops new readers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acquire::{Acquisition, Target};
use crate::backend::{script_calls, AcquireArgs, Attempt, Queueing, ReadArgs};
use crate::close::Closing;
use crate::error::{Error, ErrorKind, Result};
use crate::info::{RwLockInfo, MAX_REPORTED_WAITERS};
use crate::keys::LockKeys;
use crate::lock::{Guard, LockOptions, MAX_TTL};
use crate::pubsub::Watch;
use crate::shared::ClientShared;
use crate::wait::{CancelToken, Parker};

/// A named read-write lock. Make one with
/// [`Client::rwlock`](crate::Client::rwlock).
///
/// Any number of readers, or one writer, hold it at a time; each hold is a
/// [`Guard`] with its own lease, renewed while held and reported when lost,
/// and its own fencing token (readers and writers draw from one counter,
/// so a writer's token is above every hold before it).
///
/// - **Writer preference**: a writer that waits stops new readers, so a
///   stream of readers never starves writers; the readers already inside
///   finish, then the writer goes, then the waiting readers together.
/// - **Each reader's lease is its own**: a reader that dies frees its
///   share when its lease ends; the others keep theirs.
/// - **Not reentrant**: a thread that holds a read lease and asks for
///   another waits behind a waiting writer, which waits for the first
///   lease (a deadlock until that lease is released or lost); a reader
///   never upgrades to a writer, and a writer that asks to read waits for
///   itself. Take one hold per piece of work.
///
/// Read-write locks need one master: one server, Sentinel or Cluster.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// use std::time::Duration;
/// let client = latchkey::Client::open(&url)?;
/// let config = client.rwlock("config")?;
/// let reader = config.read()?;
/// let another = config.read()?; // readers share
/// assert!(config.try_write()?.is_none()); // the writer waits for them
/// drop((reader, another));
/// let writer = config.write_timeout(Duration::from_secs(5))?;
/// writer.release()?;
/// # Ok(()) }
/// ```
pub struct RwLock {
    client: Arc<ClientShared>,
    writer: LockKeys,
    readers: LockKeys,
    options: LockOptions,
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("name", &self.writer.name())
            .field("options", &self.options)
            .finish()
    }
}

/// Which side an acquisition takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

impl RwLock {
    pub(crate) fn new(
        client: Arc<ClientShared>,
        writer: LockKeys,
        readers: LockKeys,
        options: LockOptions,
    ) -> Result<Self> {
        options.validate()?;
        if options.get_reentrant() || options.get_fair() {
            return Err(Error::invalid(
                "a read-write lock cannot be reentrant or fair (options for locks; it prefers writers)",
            ));
        }
        Ok(RwLock {
            client,
            writer,
            readers,
            options,
        })
    }

    /// The lock's name.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.rwlock("config").unwrap().name(), "config");
    /// ```
    pub fn name(&self) -> &str {
        self.writer.name()
    }

    /// Blocks until a read lease is held.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let reader = client.rwlock("rw-a").unwrap().read().unwrap();
    /// # drop(reader);
    /// ```
    pub fn read(&self) -> Result<Guard> {
        self.read_with(None, None)
    }

    /// Blocks at most `timeout`; `ErrorKind::Timeout` if a writer held or
    /// waited for the lock throughout.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// use std::time::Duration;
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let reader = client.rwlock("rw-b").unwrap().read_timeout(Duration::from_secs(1)).unwrap();
    /// # drop(reader);
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> Result<Guard> {
        self.read_with(Some(timeout), None)
    }

    /// One attempt: `Ok(None)` if a writer holds or waits for the lock.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// assert!(client.rwlock("rw-c").unwrap().try_read().unwrap().is_some());
    /// ```
    pub fn try_read(&self) -> Result<Option<Guard>> {
        self.acquire_inner(Side::Read, None, true, None)
    }

    /// The general form of [`read`](Self::read): wait at most `timeout`
    /// (`None`: for ever; zero: one attempt, `Timeout` if refused), and give
    /// up with `ErrorKind::Cancelled` as soon as `cancel` is triggered.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let cancel = latchkey::CancelToken::new();
    /// let reader = client.rwlock("rw-d").unwrap().read_with(None, Some(&cancel));
    /// # drop(reader);
    /// ```
    pub fn read_with(
        &self,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Guard> {
        self.acquire_with(Side::Read, timeout, cancel)
    }

    /// Blocks until the lock is held for writing (no reader, no other
    /// writer).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let writer = client.rwlock("rw-e").unwrap().write().unwrap();
    /// # drop(writer);
    /// ```
    pub fn write(&self) -> Result<Guard> {
        self.write_with(None, None)
    }

    /// Blocks at most `timeout`; `ErrorKind::Timeout` if readers or
    /// another writer held the lock throughout.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// use std::time::Duration;
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let writer = client.rwlock("rw-f").unwrap().write_timeout(Duration::from_secs(1)).unwrap();
    /// # drop(writer);
    /// ```
    pub fn write_timeout(&self, timeout: Duration) -> Result<Guard> {
        self.write_with(Some(timeout), None)
    }

    /// One attempt: `Ok(None)` if readers or another writer hold the lock.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// assert!(client.rwlock("rw-g").unwrap().try_write().unwrap().is_some());
    /// ```
    pub fn try_write(&self) -> Result<Option<Guard>> {
        self.acquire_inner(Side::Write, None, true, None)
    }

    /// The general form of [`write`](Self::write), as
    /// [`read_with`](Self::read_with).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let cancel = latchkey::CancelToken::new();
    /// let writer = client.rwlock("rw-h").unwrap().write_with(None, Some(&cancel));
    /// # drop(writer);
    /// ```
    pub fn write_with(
        &self,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Guard> {
        self.acquire_with(Side::Write, timeout, cancel)
    }

    /// Turns the write hold `writer` into a read hold, atomically: no other
    /// writer comes in between. Waiting readers come in with it, unless a
    /// writer waits too: that writer goes next, once the read holds are
    /// released (writer preference). On success `writer` reads as ended
    /// (`check()` says `NotHeld`, `lost()` is false, `release()` is
    /// `NotHeld`) and the read hold is returned, with a fencing token of
    /// its own.
    ///
    /// `InvalidArgument`, changing nothing, when `writer` is not a write
    /// hold of this lock; `Closed`, changing nothing, once this lock's
    /// client is closed; `NotHeld` when its lease was lost (`writer`
    /// then reports the loss); `Timeout` with
    /// [`wait_for_replicas`](crate::ClientBuilder::wait_for_replicas) when
    /// too few replicas confirmed it (both holds are then given back in the
    /// background, and `writer` reads as released); a Redis failure leaves
    /// the outcome unknown:
    /// both holds are then given back in the background and `writer`
    /// reads as released.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let config = client.rwlock("rw-j").unwrap();
    /// let mut writer = config.write().unwrap();
    /// // ... write the new configuration ...
    /// let reader = config.downgrade(&mut writer).unwrap();
    /// assert!(config.try_read().unwrap().is_some()); // other readers come in
    /// assert!(writer.check().is_err()); // the write hold has ended
    /// # drop(reader);
    /// ```
    pub fn downgrade(&self, writer: &mut Guard) -> Result<Guard> {
        // The key alone is not enough: a plain lock's key can be this
        // writer's (a client whose prefix ends in ":rw").
        if !writer.keys().is_rw_writer() || writer.keys().lock() != self.writer.lock() {
            return Err(Error::invalid(format!(
                "not a write hold of read-write lock '{}' (a hold of {} '{}')",
                self.name(),
                writer.keys().noun(),
                writer.name()
            )));
        }
        if self.client.closing.is_closed() {
            // As for an acquire: a closed client makes no new hold (its
            // close, already over, would never release it).
            return Err(Closing::error(&self.writer));
        }
        if let Err(e) = writer.check() {
            return Err(Error::new(
                ErrorKind::NotHeld,
                format!("cannot downgrade: {e}"),
            ));
        }
        let reader = Request {
            rwlock: self,
            side: Side::Read,
        }
        .new_hold();
        let ttl = self.options.get_ttl();
        let call = script_calls::rw_downgrade_call(
            &self.writer,
            &self.readers,
            writer.token(),
            &reader,
            ttl,
        );
        // From here the write hold ends whatever the outcome: no renewal
        // may report it lost meanwhile.
        writer.handing_over();
        let sent = Instant::now();
        let outcome = self
            .client
            .backend
            .eval_on_one_node_confirmed(&call, "a read-write lock")
            .and_then(|(value, confirmed)| Ok((script_calls::parse_acquire(value)?, confirmed)))
            .map_err(|e| {
                e.context(format_args!(
                    "downgrading read-write lock '{}'",
                    self.name()
                ))
            });
        let watchdog = &self.client.watchdog;
        let until = Instant::now() + ttl;
        match outcome {
            Ok((Attempt::Acquired(_), false)) => {
                // Too few replicas confirmed it (wait_for_replicas): a
                // failover may lose the read hold, so it does not count as
                // held; the write hold has ended on the master. Give both
                // back, as for an acquire too few replicas confirmed.
                watchdog.release_later(
                    self.writer.clone(),
                    writer.token().to_string(),
                    false,
                    false,
                    until,
                );
                watchdog.release_later(self.readers.clone(), reader, false, false, until);
                writer.handed_over();
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "downgrading read-write lock '{}': too few replicas confirmed the downgrade; both holds were given back",
                        self.name()
                    ),
                ))
            }
            Ok((Attempt::Acquired(fencing_token), true)) => {
                writer.handed_over();
                let reader = Guard::start(
                    &self.client,
                    &self.readers,
                    &self.options,
                    reader,
                    fencing_token,
                    sent,
                );
                if reader.released_by_close() {
                    // The client was closed meanwhile: its close missed
                    // this hold, released now.
                    return Err(Closing::error(&self.writer));
                }
                Ok(reader)
            }
            Ok(_) => {
                // Redis says the write hold is gone: the guard must not
                // vouch for it any more (another writer may hold it).
                let reason = format!(
                    "read-write lock '{}' expired or is held by another owner",
                    self.name()
                );
                writer.mark_lost(reason.clone());
                Err(Error::new(
                    ErrorKind::NotHeld,
                    format!("cannot downgrade: {reason}"),
                ))
            }
            Err(e) => {
                // The script may have run: give back whichever hold exists.
                watchdog.release_later(
                    self.writer.clone(),
                    writer.token().to_string(),
                    false,
                    false,
                    until,
                );
                watchdog.release_later(self.readers.clone(), reader, false, true, until);
                writer.handed_over();
                Err(e)
            }
        }
    }

    /// Who holds the lock: the writer (with the writers queued behind
    /// it), if any, and the readers (at most
    /// [`MAX_REPORTED_WAITERS`](crate::MAX_REPORTED_WAITERS) of each
    /// listed).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let config = client.rwlock("rw-i").unwrap();
    /// let writer = config.write().unwrap();
    /// let info = config.inspect().unwrap();
    /// assert_eq!(info.writer.unwrap().owner_token, writer.token());
    /// assert_eq!(info.readers.hold_count, 0);
    /// ```
    pub fn inspect(&self) -> Result<RwLockInfo> {
        let backend = &self.client.backend;
        let writer = backend.inspect(&self.writer, MAX_REPORTED_WAITERS)?;
        let readers = backend.inspect_permits(&self.readers, MAX_REPORTED_WAITERS)?;
        Ok(RwLockInfo {
            name: self.name().to_string(),
            writer,
            readers,
        })
    }

    fn acquire_with(
        &self,
        side: Side,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Guard> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started.checked_add(t).unwrap_or(started + MAX_TTL));
        match self.acquire_inner(side, deadline, false, cancel)? {
            Some(guard) => Ok(guard),
            None => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "read-write lock '{}' was not available for {} within {:?}",
                    self.name(),
                    match side {
                        Side::Read => "reading (a writer held or waited for it)",
                        Side::Write => "writing (readers or a writer held it)",
                    },
                    timeout.unwrap_or_default()
                ),
            )),
        }
    }

    fn acquire_inner(
        &self,
        side: Side,
        deadline: Option<Instant>,
        try_once: bool,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Guard>> {
        let request = Request { rwlock: self, side };
        let hold = request.new_hold();
        let acquired =
            Acquisition::new(&request, deadline, try_once, cancel, hold.clone(), hold).run()?;
        match acquired {
            Some(guard) if guard.released_by_close() => Err(Closing::error(&self.writer)),
            acquired => Ok(acquired),
        }
    }
}

/// One acquisition of one side: what the acquire loop acquires.
struct Request<'a> {
    rwlock: &'a RwLock,
    side: Side,
}

impl Request<'_> {
    /// The keys of the hold this request takes.
    fn keys(&self) -> &LockKeys {
        match self.side {
            Side::Read => &self.rwlock.readers,
            Side::Write => &self.rwlock.writer,
        }
    }

    /// A new hold's token: a reader's counts as one permit of the lease
    /// set (see src/scripts/rw_read_acquire.lua).
    fn new_hold(&self) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        match self.side {
            Side::Read => format!("1:{random}"),
            Side::Write => random,
        }
    }
}

impl Target for Request<'_> {
    type Held = Guard;

    fn name(&self) -> &str {
        self.rwlock.name()
    }

    fn noun(&self) -> &'static str {
        "read-write lock"
    }

    fn attempt(
        &self,
        owner: &str,
        hold: &str,
        waited: bool,
        queue: Queueing<'_>,
    ) -> Result<Attempt> {
        let rwlock = self.rwlock;
        let backend = &rwlock.client.backend;
        match self.side {
            Side::Read => backend.acquire_read(&ReadArgs {
                writer: &rwlock.writer,
                readers: &rwlock.readers,
                hold,
                ttl: rwlock.options.get_ttl(),
            }),
            Side::Write => {
                let attempt = backend.acquire(&AcquireArgs {
                    keys: &rwlock.writer,
                    owner,
                    hold,
                    ttl: rwlock.options.get_ttl(),
                    reentrant: false,
                    waited,
                    nest: false,
                    known_token: 0,
                    live_holds: &[],
                    queue,
                    fair: false,
                    readers: Some(&rwlock.readers),
                });
                if let (Queueing::Leave(waiter), Ok(Attempt::Held(_))) = (queue, &attempt) {
                    // The last attempt left the writers' queue in silence;
                    // readers waiting behind this writer listen for its
                    // departure (see leave_queue.lua), so it leaves again,
                    // loudly.
                    self.leave_queue(waiter);
                }
                attempt
            }
        }
    }

    fn held(
        &self,
        hold: String,
        fencing_token: u64,
        sent: Instant,
        unheard_since: Option<Instant>,
    ) -> Guard {
        let rwlock = self.rwlock;
        Guard::start(
            &rwlock.client,
            self.keys(),
            &rwlock.options,
            hold,
            fencing_token,
            sent,
        )
        .unheard_since(unheard_since)
    }

    /// Readers wait for the writer's release; a writer also for the
    /// readers' releases.
    fn watch_releases(
        &self,
        parker: &Arc<Parker>,
        seen: u64,
        hold: &str,
        waiter: &str,
    ) -> Result<Vec<Watch>> {
        let rwlock = self.rwlock;
        let mut channels = vec![rwlock.writer.channel()];
        if self.side == Side::Write {
            channels.push(rwlock.readers.channel());
        }
        rwlock.client.watch_releases(
            &channels,
            parker,
            seen,
            hold,
            waiter,
            &format_args!("acquiring read-write lock '{}'", rwlock.name()),
        )
    }

    fn give_back_later(&self, hold: &str, first_unknown: Instant) {
        let rwlock = self.rwlock;
        rwlock.client.watchdog.release_later(
            self.keys().clone(),
            hold.to_string(),
            false,
            true,
            first_unknown + rwlock.options.get_ttl(),
        );
    }

    fn give_back_now(&self, held: Guard) {
        let _ = held.release();
    }

    fn retry_jitter(&self) -> Duration {
        self.rwlock.options.retry_jitter
    }

    fn hold_for_next_attempt(&self) -> Option<String> {
        self.rwlock
            .client
            .backend
            .undoes_failed_attempts()
            .then(|| self.new_hold())
    }

    fn closing(&self) -> Option<&Closing> {
        Some(&self.rwlock.client.closing)
    }

    /// Waiting writers queue (so that new readers see them and wait);
    /// readers do not.
    fn queues_waiters(&self) -> bool {
        self.side == Side::Write && self.rwlock.client.backend.queues_waiters()
    }

    fn leave_queue(&self, waiter: &str) {
        self.rwlock
            .client
            .watchdog
            .leave_queue_later(self.rwlock.writer.clone(), waiter.to_string());
    }
}
