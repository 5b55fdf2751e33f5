//! Leader election: candidates campaign for one name, and the winner leads
//! until it resigns or loses its lease; observers see who leads and are
//! woken on every change. A leadership is a plain lock's hold in a
//! namespace of its own (so the acquire loop, the waiter queue, renewal,
//! lost reports, close and fork are the lock's), plus an announcement: the
//! leader's value and term (the hold's fencing token), which observers
//! read and are told of by pub/sub.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Call;
use crate::close::Closing;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::LockKeys;
use crate::lock::{Guard, Lock, LockOptions, MAX_TTL};
use crate::pubsub::Watch;
use crate::scripts;
use crate::shared::ClientShared;
use crate::wait::{CancelToken, Parker};

/// The largest value a candidate may announce, in bytes.
pub const MAX_LEADER_VALUE: usize = 64 * 1024;

/// The longest an observer goes without looking at the election when no
/// message comes (nobody leads: a new leader's announcement wakes it).
const OBSERVE_RECHECK: Duration = Duration::from_secs(5);

/// A named election. Make one with [`Client::election`](crate::Client::election).
///
/// Candidates [`campaign`](Election::campaign) with a value (an address, an
/// id); one at a time leads, with a [`Leadership`] whose term increases
/// with every new leadership and serves as a fencing token. The lease is
/// renewed while held; a leader that dies is replaced once its lease ends
/// (within its ttl), and a leadership that is lost is reported like a lost
/// lock (`check()`, `lost()`, the `on_lost` callback): never do a leader's
/// work without checking. Observers read the leader with
/// [`leader`](Election::leader) and wait for the next change with
/// [`observe`](Election::observe), woken by pub/sub.
///
/// Elections need their state on one master: one server, Sentinel or
/// Cluster. Redlock refuses them.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let election = client.election("scheduler")?;
/// let leadership = election.campaign(b"host-a:8080")?;
/// let leader = election.leader()?.expect("someone leads");
/// assert_eq!(leader.value, b"host-a:8080");
/// assert_eq!(leader.term, leadership.term());
/// leadership.check()?; // before each piece of a leader's work
/// leadership.resign()?;
/// # Ok(()) }
/// ```
pub struct Election {
    client: Arc<ClientShared>,
    lock: Lock,
    keys: LockKeys,
    /// The announcement: a hash of the leader's token, term and value
    /// (see [`LockKeys::election_value`]).
    value_key: Vec<u8>,
}

/// Who leads an election, as [`Election::leader`] and
/// [`Election::observe`] report it.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let election = client.election("leader-doc")?;
/// let leadership = election.campaign(b"me")?;
/// let leader = election.leader()?.expect("someone leads");
/// assert_eq!(leader.token, leadership.token());
/// assert!(leader.ttl > std::time::Duration::ZERO);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leader {
    /// The leader's hold token (what its `Leadership::token` says).
    pub token: String,
    /// Its term: the fencing token of its hold, higher for every new
    /// leadership.
    pub term: u64,
    /// The value it announced.
    pub value: Vec<u8>,
    /// Time until its lease ends in Redis, unless renewed.
    pub ttl: Duration,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.keys.name())
            .field("options", self.lock.options())
            .finish()
    }
}

/// What the election read script says.
enum Reading {
    /// Nobody leads.
    Nobody,
    /// A leader holds for this long but has not announced itself yet.
    Unannounced(Duration),
    Leads(Leader),
}

impl Election {
    pub(crate) fn new(
        client: Arc<ClientShared>,
        keys: LockKeys,
        options: LockOptions,
    ) -> Result<Self> {
        options.validate()?;
        if options.get_reentrant() {
            return Err(Error::invalid(
                "an election cannot be reentrant: a candidate that leads already has its leadership",
            ));
        }
        let value_key = keys.election_value();
        Ok(Election {
            lock: Lock::new(client.clone(), keys.clone(), options),
            client,
            keys,
            value_key,
        })
    }

    /// The election's name.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.election("primary").unwrap().name(), "primary");
    /// ```
    pub fn name(&self) -> &str {
        self.keys.name()
    }

    /// Blocks until this candidate leads, announcing `value`.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let leadership = client.election("e-a").unwrap().campaign(b"node-1").unwrap();
    /// assert_eq!(leadership.value(), b"node-1");
    /// ```
    pub fn campaign(&self, value: &[u8]) -> Result<Leadership> {
        self.campaign_with(value, None, None)
    }

    /// Blocks at most `timeout`; `ErrorKind::Timeout` if another leads
    /// throughout.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// use std::time::Duration;
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let election = client.election("e-b").unwrap();
    /// let first = election.campaign(b"one").unwrap();
    /// let err = election.campaign_timeout(b"two", Duration::from_millis(50)).unwrap_err();
    /// assert_eq!(err.kind(), latchkey::ErrorKind::Timeout);
    /// # drop(first);
    /// ```
    pub fn campaign_timeout(&self, value: &[u8], timeout: Duration) -> Result<Leadership> {
        self.campaign_with(value, Some(timeout), None)
    }

    /// The general form: wait at most `timeout` (`None`: for ever; zero:
    /// one attempt), and give up with `ErrorKind::Cancelled` as soon as
    /// `cancel` is triggered. `InvalidArgument` for a value over
    /// [`MAX_LEADER_VALUE`] bytes.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let cancel = latchkey::CancelToken::new();
    /// let leadership = client.election("e-c").unwrap().campaign_with(b"x", None, Some(&cancel));
    /// # drop(leadership);
    /// ```
    pub fn campaign_with(
        &self,
        value: &[u8],
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Leadership> {
        if value.len() > MAX_LEADER_VALUE {
            return Err(Error::invalid(format!(
                "a leader's value must be at most {MAX_LEADER_VALUE} bytes; this one has {}",
                value.len()
            )));
        }
        let started = Instant::now();
        let deadline = timeout.map(|t| started.checked_add(t).unwrap_or(started + MAX_TTL));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let guard = self.lock.acquire_with(left, cancel).map_err(|e| {
                if e.kind() == ErrorKind::Timeout {
                    Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "election '{}' had another leader throughout {:?}",
                            self.name(),
                            timeout.unwrap_or_default()
                        ),
                    )
                } else {
                    e
                }
            })?;
            match self.announce(&guard, value) {
                Ok(true) => {
                    return Ok(Leadership {
                        guard,
                        value: value.to_vec(),
                    })
                }
                // The lease was lost between the acquire and the
                // announcement: campaign again.
                Ok(false) => drop(guard),
                Err(e) => {
                    // Never lead unannounced: observers would not see it.
                    let _ = guard.release();
                    return Err(e);
                }
            }
        }
    }

    fn announce(&self, guard: &Guard, value: &[u8]) -> Result<bool> {
        let term = guard.fencing_token().to_string();
        let call = Call {
            script: scripts::election_announce(),
            keys: vec![self.keys.lock(), &self.value_key],
            args: vec![
                guard.token().as_bytes().into(),
                term.as_bytes().into(),
                value.into(),
                self.keys.channel().into(),
            ],
        };
        let reply = self
            .client
            .backend
            .eval_on_one_node(&call, "an election")
            .map_err(|e| {
                e.context(format_args!(
                    "announcing the leader of election '{}'",
                    self.name()
                ))
            })?;
        Ok(matches!(reply, redis::Value::Int(1)))
    }

    fn read(&self) -> Result<Reading> {
        let call = Call {
            script: scripts::election_leader(),
            keys: vec![self.keys.lock(), &self.value_key],
            args: vec![],
        };
        let context = || format!("reading the leader of election '{}'", self.name());
        let reply = self
            .client
            .backend
            .eval_on_one_node(&call, "an election")
            .map_err(|e| e.context(context()))?;
        parse_reading(reply).map_err(|e| e.context(context()))
    }

    /// Who leads now, if anyone (a leader elected a moment ago that has not
    /// announced itself yet is not reported).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// assert!(client.election("e-d").unwrap().leader().unwrap().is_none());
    /// ```
    pub fn leader(&self) -> Result<Option<Leader>> {
        Ok(match self.read()? {
            Reading::Leads(leader) => Some(leader),
            _ => None,
        })
    }

    /// Waits until the leader differs from `known` (`None`: nobody; leaders
    /// compare by term) and returns the new one (`None`: nobody leads now).
    /// Woken by pub/sub when a leader is announced or resigns, and by its
    /// lease's end when a leader dies. `Timeout` when nothing changed
    /// within `timeout` (`None`: wait for ever), `Cancelled` when `cancel`
    /// is triggered, `Closed` when the client is closed.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let election = client.election("e-e").unwrap();
    /// let now = election.leader().unwrap();
    /// let watcher = std::thread::spawn({
    ///     let election = client.election("e-e").unwrap();
    ///     move || election.observe(now.as_ref(), None, None)
    /// });
    /// let leadership = election.campaign(b"new").unwrap();
    /// let seen = watcher.join().unwrap().unwrap().expect("a leader");
    /// assert_eq!(seen.term, leadership.term());
    /// ```
    pub fn observe(
        &self,
        known: Option<&Leader>,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Leader>> {
        self.observe_after(known.map(|leader| leader.term), timeout, cancel)
    }

    /// [`observe`](Self::observe), with the known leader given by its term
    /// (`None`: nobody), as the C ABI passes it.
    pub(crate) fn observe_after(
        &self,
        known_term: Option<u64>,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Leader>> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started.checked_add(t).unwrap_or(started + MAX_TTL));
        let parker = Parker::new();
        let _cancelled = cancel.map(|c| c.register(&parker));
        let _closed = self.client.closing.waiters().register(&parker);
        let mut watches = None;
        loop {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("observing election '{}' was cancelled", self.name()),
                ));
            }
            if self.client.closing.is_closed() {
                return Err(Closing::error(&self.keys));
            }
            let seen = parker.wakeups();
            if !watches
                .as_ref()
                .is_some_and(|w: &Vec<Watch>| w.iter().any(Watch::is_live))
            {
                // Listen before looking, so no change in between is missed;
                // again whenever the listener connection was lost (the
                // loss wakes this loop), or nothing would wake it but its
                // re-check.
                watches = Some(self.client.watch_releases(
                    &[self.keys.channel()],
                    &parker,
                    seen,
                    "",
                    "",
                    &format_args!("observing election '{}'", self.name()),
                )?);
            }
            let (current, holder_ttl) = match self.read()? {
                Reading::Nobody => (None, None),
                Reading::Unannounced(ttl) => (None, Some(ttl)),
                Reading::Leads(leader) => {
                    let ttl = leader.ttl;
                    (Some(leader), Some(ttl))
                }
            };
            if current.as_ref().map(|leader| leader.term) != known_term {
                // A change read after a cancel or close (the close's own
                // resignation, say) reports the cancel or close.
                if cancel.is_some_and(CancelToken::is_cancelled) || self.client.closing.is_closed()
                {
                    continue;
                }
                return Ok(current);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "election '{}' did not change within {:?}",
                        self.name(),
                        timeout.unwrap_or_default()
                    ),
                ));
            }
            // A leader that dies sends nothing: look again when its lease
            // ends (a live leader has renewed it by then).
            let recheck = holder_ttl
                .map_or(OBSERVE_RECHECK, |ttl| ttl + Duration::from_millis(1))
                .min(OBSERVE_RECHECK);
            let until = deadline.map_or(now + recheck, |d| d.min(now + recheck));
            parker.park(seen, until);
        }
    }
}

fn parse_reading(reply: redis::Value) -> Result<Reading> {
    let unexpected = || Error::new(ErrorKind::Server, format!("unexpected reply: {reply:?}"));
    let redis::Value::Array(items) = &reply else {
        return Err(unexpected());
    };
    let millis = |value: &redis::Value| match value {
        redis::Value::Int(ms) => Ok(Duration::from_millis(u64::try_from(*ms).unwrap_or(0))),
        _ => Err(unexpected()),
    };
    let bytes = |value: &redis::Value| match value {
        redis::Value::BulkString(b) => Ok(b.clone()),
        _ => Err(unexpected()),
    };
    match items.as_slice() {
        [] => Ok(Reading::Nobody),
        [ttl] => Ok(Reading::Unannounced(millis(ttl)?)),
        [ttl, token, term, value] => Ok(Reading::Leads(Leader {
            token: String::from_utf8_lossy(&bytes(token)?).into_owned(),
            term: std::str::from_utf8(&bytes(term)?)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(unexpected)?,
            value: bytes(value)?,
            ttl: millis(ttl)?,
        })),
        _ => Err(unexpected()),
    }
}

/// This candidate leads. Dropping it resigns (best effort, errors
/// ignored); call [`resign`](Leadership::resign) to see the outcome.
/// Either way the next candidate leads at once and observers are told.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let leadership = client.election("leadership-doc")?.campaign(b"me")?;
/// assert!(leadership.term() > 0);
/// assert!(!leadership.lost());
/// leadership.resign()?;
/// # Ok(()) }
/// ```
pub struct Leadership {
    guard: Guard,
    value: Vec<u8>,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("election", &self.guard.name())
            .field("term", &self.term())
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl Leadership {
    /// The term: this leadership's fencing token, higher than every earlier
    /// leadership's. Pass it to what the leader writes to.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-a").unwrap().campaign(b"v").unwrap();
    /// assert!(leadership.term() > 0);
    /// ```
    pub fn term(&self) -> u64 {
        self.guard.fencing_token()
    }

    /// The value announced.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-b").unwrap().campaign(b"v").unwrap();
    /// assert_eq!(leadership.value(), b"v");
    /// ```
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The leadership's hold token (what [`Leader::token`] says).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-c").unwrap().campaign(b"v").unwrap();
    /// assert_eq!(leadership.token().len(), 32);
    /// ```
    pub fn token(&self) -> &str {
        self.guard.token()
    }

    /// `Ok(())` while this candidate leads; `Err(Lost)` once its lease is
    /// lost (see [`Guard::check`]).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-d").unwrap().campaign(b"v").unwrap();
    /// leadership.check().expect("still leading");
    /// ```
    pub fn check(&self) -> Result<()> {
        self.guard.check()
    }

    /// Whether the leadership's lease is lost.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-e").unwrap().campaign(b"v").unwrap();
    /// assert!(!leadership.lost());
    /// ```
    pub fn lost(&self) -> bool {
        self.guard.lost()
    }

    /// How long this candidate certainly still leads (see
    /// [`Guard::remaining`]).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-f").unwrap().campaign(b"v").unwrap();
    /// assert!(leadership.remaining() > std::time::Duration::ZERO);
    /// ```
    pub fn remaining(&self) -> Duration {
        self.guard.remaining()
    }

    /// The hold behind the leadership, for fenced writes and extensions.
    /// Releasing it is resigning.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-g").unwrap().campaign(b"v").unwrap();
    /// assert!(leadership.guard().fenced_write("leader-state", b"v1").unwrap().written);
    /// ```
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The hold behind the leadership, which resigns when released (the C
    /// ABI hands leaderships out as guards).
    pub(crate) fn into_guard(self) -> Guard {
        self.guard
    }

    /// Gives the leadership up: the next candidate leads at once, and
    /// observers are told. `NotHeld` if it had been lost.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// # let leadership = latchkey::Client::open(&url).unwrap().election("t-h").unwrap().campaign(b"v").unwrap();
    /// leadership.resign().unwrap();
    /// ```
    pub fn resign(self) -> Result<()> {
        // The backend withdraws the announcement when it releases an
        // election's hold (whoever releases it: this, a drop, a close).
        self.guard.release()
    }
}
