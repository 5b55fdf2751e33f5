//! What the library reports about locks and fenced resources: plain result
//! types, shared by the client API and the backends.

use std::time::Duration;

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
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
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
