//! What the library reports about locks and fenced resources: plain result
//! types, shared by the client API and the backends.

use std::time::Duration;

/// The most queued waiters [`Client::inspect`](crate::Client::inspect)
/// lists in [`LockInfo::queue`]: the first 1000 in the order a release
/// hands the lock on. [`LockInfo::queue_len`] still counts them all, so a
/// caller knows when the list was cut. The bound keeps one inspect of a
/// lock with a huge queue from blocking Redis for long (the script runs
/// atomically) or sending a huge reply.
pub const MAX_REPORTED_WAITERS: usize = 1000;

/// What [`Client::inspect`](crate::Client::inspect) reports about a held lock.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let guard = client.lock("inspected")?.acquire()?;
/// let info = client.inspect("inspected")?.expect("held");
/// assert_eq!(info.owner_token, guard.token());
/// assert_eq!(info.fencing_token, guard.fencing_token());
/// assert!(info.masters.is_empty()); // one server, not Redlock
/// assert!(info.queue.is_empty()); // nobody is waiting for it
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock's name.
    pub name: String,
    /// The holder: a plain lock's hold token (what the holder's
    /// `Guard::token` says), or the owning handle's token for a reentrant
    /// lock (whose holds each have their own token).
    pub owner_token: String,
    /// The fencing token issued to the holder.
    pub fencing_token: u64,
    /// Time until the lease expires in Redis; `None` if the key has no expiry.
    pub ttl: Option<Duration>,
    /// Whether it is a reentrant lock.
    pub reentrant: bool,
    /// How many nested holds a reentrant lock has (1 for a plain lock).
    pub hold_count: u64,
    /// For Redlock: what each master says (empty for a single server).
    pub masters: Vec<MasterState>,
    /// The acquisitions waiting for the lock, in the order a release hands
    /// it to them (the earliest to queue first); entries that
    /// ran out (their waiter died) are left out. At most
    /// [`MAX_REPORTED_WAITERS`]; [`queue_len`](Self::queue_len) counts them
    /// all.
    ///
    /// Always empty for Redlock, whose waiters do not queue (its masters
    /// share no queue; a release there wakes every waiter). A lock that is
    /// free is reported as `None`, queue and all, even when waiters are
    /// still queued: in the moment a release has handed the lock to the
    /// next waiter and that waiter has not yet taken it, or when a
    /// holder's lease ran out and its waiters have not yet looked again
    /// (they do within 5 s).
    pub queue: Vec<QueuedWaiter>,
    /// How many live waiters are queued: more than `queue.len()` when the
    /// list was cut at [`MAX_REPORTED_WAITERS`].
    pub queue_len: u64,
}

/// What [`Semaphore::inspect`](crate::Semaphore::inspect) reports: the
/// permits in use and who holds them.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let semaphore = client.semaphore("inspected-pool", 3)?;
/// let permits = semaphore.acquire(2)?;
/// let info = semaphore.inspect()?;
/// assert_eq!(info.in_use, 2);
/// assert_eq!(info.holders[0].token, permits.token());
/// assert_eq!(info.holders[0].permits, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreInfo {
    /// The semaphore's name.
    pub name: String,
    /// Permits held now, by holds whose lease has not ended.
    pub in_use: u64,
    /// How many holds there are (one per acquisition, whatever its permits).
    pub hold_count: u64,
    /// The highest fencing token issued so far (0: none, or forgotten
    /// after the fencing counter's retention).
    pub fencing_token: u64,
    /// The holds, the one whose lease ends first first; at most
    /// [`MAX_REPORTED_WAITERS`] ([`hold_count`](Self::hold_count) counts
    /// them all).
    pub holders: Vec<PermitHolder>,
}

/// What [`RwLock::inspect`](crate::RwLock::inspect) reports: the writer,
/// if one holds the lock, and the readers.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let config = client.rwlock("inspected-config")?;
/// let reader = config.read()?;
/// let info = config.inspect()?;
/// assert!(info.writer.is_none());
/// assert_eq!(info.readers.hold_count, 1);
/// assert_eq!(info.readers.holders[0].token, reader.token());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RwLockInfo {
    /// The read-write lock's name.
    pub name: String,
    /// The writer's hold (and the writers queued behind it), if a writer
    /// holds the lock.
    pub writer: Option<LockInfo>,
    /// The readers' leases (each reader holds one permit of them).
    pub readers: SemaphoreInfo,
}

/// One hold of a semaphore's permits, as [`SemaphoreInfo::holders`] lists it.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let semaphore = client.semaphore("listed-pool", 2)?;
/// let _permit = semaphore.acquire(1)?;
/// let holder = &semaphore.inspect()?.holders[0];
/// assert_eq!(holder.permits, 1);
/// assert!(holder.ttl > std::time::Duration::ZERO);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PermitHolder {
    /// The hold's token (what its `Guard::token` says).
    pub token: String,
    /// How many permits it holds.
    pub permits: u64,
    /// Time until its lease ends in Redis.
    pub ttl: Duration,
}

/// One waiting acquisition in a lock's queue, as [`LockInfo::queue`]
/// lists it.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// use std::time::{Duration, Instant};
///
/// let client = latchkey::Client::open(&url)?;
/// let guard = client.lock("queued-doc")?.acquire()?;
/// let waiter = std::thread::spawn({
///     let lock = client.lock("queued-doc")?;
///     move || lock.acquire_timeout(Duration::from_secs(30)).map(drop)
/// });
/// // Wait until the waiter has queued (an inspect changes nothing).
/// let deadline = Instant::now() + Duration::from_secs(20);
/// let mut info = client.inspect("queued-doc")?.expect("held");
/// while info.queue_len == 0 {
///     assert!(Instant::now() < deadline, "the waiter never queued");
///     std::thread::sleep(Duration::from_millis(10));
///     info = client.inspect("queued-doc")?.expect("held");
/// }
/// let queued = &info.queue[0];
/// assert!(queued.id.starts_with("w:"));
/// assert!(queued.expires_in <= Duration::from_secs(15));
/// guard.release()?; // hands the lock to the waiter
/// waiter.join().expect("the waiter did not panic")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedWaiter {
    /// The entry's id: `w:` and a random id, one per waiting acquisition
    /// (not the hold token the acquisition gets when it takes the lock).
    /// A release that hands the lock to this waiter reserves the key as
    /// `handoff:` and this id.
    pub id: String,
    /// Time until the entry runs out unless its waiter asks again. A live
    /// waiter asks at least every 5 s, renewing its entry to 15 s; an
    /// entry that runs out is skipped (its waiter died).
    pub expires_in: Duration,
}

/// One Redlock master's view of a lock, as reported by [`Client::inspect`](crate::Client::inspect).
///
/// ```no_run
/// # fn main() -> latchkey::Result<()> {
/// let client = latchkey::Client::redlock_builder(&["redis://a:6379", "redis://b:6379", "redis://c:6379"]).build()?;
/// if let Some(info) = client.inspect("orders:42")? {
///     for master in &info.masters {
///         println!("{}: {:?} {:?}", master.server, master.holder, master.error);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterState {
    /// Which master ("redis at host:port").
    pub server: String,
    /// The owner token this master holds for the lock, if any.
    pub holder: Option<String>,
    /// The fencing token this master knows for the holder.
    pub fencing_token: Option<u64>,
    /// Time until the key expires on this master.
    pub ttl: Option<Duration>,
    /// Why this master did not answer, if it did not.
    pub error: Option<String>,
}

/// Whether a fenced write was applied, and the highest token the resource has seen.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let outcome = client.fenced_write("doc-resource", 1000, b"newest")?;
/// assert!(outcome.written);
/// let stale = client.fenced_write("doc-resource", 999, b"stale")?;
/// assert!(!stale.written);
/// assert_eq!(stale.highest_token, 1000);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencedWrite {
    /// True when the value was written.
    pub written: bool,
    /// The highest fencing token the resource has accepted.
    pub highest_token: u64,
}
