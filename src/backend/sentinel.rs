//! A master managed by Redis Sentinel: the sentinels say where the master
//! is, and the node follows a failover two ways.
//!
//! - It listens to every sentinel's announcements (`+promoted-slave` from
//!   the sentinel that runs the failover, `+switch-master` from all of them
//!   once it is done) and moves to the new master as soon as one names it
//!   and that server says it is a master. The client is then told
//!   ([`MasterSwitched`]): it re-checks every renewed lease on the new
//!   master (one without `auto_renew` is left to its ttl, as documented)
//!   and listens for releases there. Until the sentinels demote it, the old
//!   master still grants locks; a client that kept using it would hold a
//!   lock that a client of the new master holds too, and neither would be
//!   told (the chaos checker found this; `tests/chaos_findings.rs`).
//! - A command that finds the old master gone or demoted (connection
//!   refused, `READONLY`) asks the sentinels again and runs once more on
//!   the new master.
//!
//! A reply from a master that was replaced while the command ran is not
//! trusted: a script that is safe to re-send runs again on the new master,
//! any other reports an unknown outcome (reconciled above, like a timeout).
//!
//! What a failover can still lose: replication is asynchronous, so a lock
//! written to the old master just before it failed may not have reached the
//! replica that is promoted; and a lock the old master granted in the
//! moments before this client heard the announcement exists only there.
//! The lease is then reported lost when the client moves (not at its next
//! renewal), but for that moment two clients may hold it. Waiting for
//! every replica (`ClientBuilder::wait_for_replicas` with the number of
//! replicas) closes both: the promoted replica must have confirmed the lock,
//! and the old master cannot, having lost it. Fencing tokens close them for
//! resources that check them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::IntoConnectionInfo;

use super::single::{resend_safe, SingleNode};
use super::{Call, MasterSwitched, PubSubEndpoint, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::pubsub::{Announcements, OnAnnouncement, Subscribed};

/// The sentinel channels that name a new master: `+promoted-slave` comes
/// first, from the sentinel running the failover, when the replica has
/// become a master; `+switch-master` from every sentinel once it knows.
const PROMOTED: &[u8] = b"+promoted-slave";
const SWITCHED: &[u8] = b"+switch-master";

/// How many times a command whose master was replaced while it ran goes
/// again on the new one.
const REPLACED_MASTER_ROUNDS: usize = 3;

pub(crate) struct SentinelNode {
    inner: Arc<Inner>,
}

struct Inner {
    sentinels: Vec<redis::Client>,
    master_name: String,
    /// Database, user and password for the master (not the sentinels).
    master_settings: redis::RedisConnectionInfo,
    connect_timeout: Duration,
    command_timeout: Duration,
    pool_size: usize,
    current: Mutex<Option<Arc<SingleNode>>>,
    /// Who to tell when the master changes.
    on_switch: Mutex<Vec<MasterSwitched>>,
    /// When `current` last changed from one master to another.
    last_switch: Mutex<Option<Instant>>,
    /// The listeners to the sentinels' announcements, and the fork
    /// generation + 1 that started them (0: none yet; a forked child
    /// starts its own). Held only to start them, never while waiting.
    listeners: Mutex<(u64, Vec<Announcements>)>,
    /// The value in `listeners.0`, read without the lock on every call.
    listening: AtomicU64,
}

pub(crate) struct SentinelConfig {
    pub(crate) sentinels: Vec<redis::Client>,
    pub(crate) master_name: String,
    pub(crate) master_settings: redis::RedisConnectionInfo,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) pool_size: usize,
}

impl SentinelNode {
    pub(crate) fn new(config: SentinelConfig) -> Self {
        SentinelNode {
            inner: Arc::new(Inner {
                sentinels: config.sentinels,
                master_name: config.master_name,
                master_settings: config.master_settings,
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
                pool_size: config.pool_size,
                current: Mutex::new(None),
                on_switch: Mutex::new(Vec::new()),
                last_switch: Mutex::new(None),
                listeners: Mutex::new((0, Vec::new())),
                listening: AtomicU64::new(0),
            }),
        }
    }

    /// Runs `op` (the scripts `calls`) on the current master; after a
    /// failover-looking error, finds the master again and runs `op` once
    /// more, if that cannot run a script twice: a refusal (a replica's
    /// READONLY, LOADING) ran nothing, but after a timeout or a dropped
    /// connection the scripts may have run, so only scripts that are
    /// [`resend_safe`] go again; the others report the error (their effect
    /// is reconciled above) and the next call finds the new master.
    ///
    /// A reply that comes from a master replaced meanwhile (a failover was
    /// announced while the command ran) is not trusted either: safe scripts
    /// run again on the new master, the others report an unknown outcome.
    fn with_master<T>(
        &self,
        calls: &[Call<'_>],
        op: impl Fn(&SingleNode) -> Result<T>,
    ) -> Result<T> {
        listen_for_failovers(&self.inner);
        let mut node = self.inner.master(false)?;
        let mut result = match op(&node) {
            Err(e) if looks_like_failover(&e) => {
                let fresh = self.inner.master(true)?;
                if !(was_refused(&e) || resend_safe(calls)) {
                    return Err(e);
                }
                node = fresh;
                op(&node)
            }
            other => other,
        };
        // Two failovers in a row may replace the master again while the
        // re-sent command runs: a bounded number of rounds.
        for _ in 0..REPLACED_MASTER_ROUNDS {
            if result.is_err() || self.inner.is_current(&node) {
                break;
            }
            let fresh = self.inner.master(false)?;
            if !resend_safe(calls) {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "{} was replaced by {} while the command ran; \
                         what it did there does not count",
                        node.describe(),
                        fresh.describe()
                    ),
                ));
            }
            node = fresh;
            result = op(&node);
        }
        result
    }
}

/// Starts listening to the sentinels' announcements, once per process
/// (a forked child has no listener threads: it starts its own). The first
/// time, waits up to the command timeout for one sentinel to confirm, so a
/// failover soon after the client's first command is not missed.
fn listen_for_failovers(inner: &Arc<Inner>) {
    let generation = crate::fork::generation() + 1;
    if inner.listening.load(Ordering::Acquire) == generation {
        return;
    }
    let mut listeners = inner.listeners.lock();
    if listeners.0 == generation {
        return;
    }
    for inherited in std::mem::take(&mut listeners.1) {
        // The parent's: its thread is not here, its socket is the parent's.
        inherited.forget();
    }
    let weak = Arc::downgrade(inner);
    let on_message: OnAnnouncement = Arc::new(move |channel, payload| {
        if let Some(inner) = Weak::upgrade(&weak) {
            inner.heard(channel, payload);
        }
    });
    let channels = vec![PROMOTED.to_vec(), SWITCHED.to_vec()];
    let subscribed = Arc::new(Subscribed::default());
    listeners.1 = inner
        .sentinels
        .iter()
        .filter_map(|sentinel| {
            let endpoint = PubSubEndpoint {
                info: sentinel.get_connection_info().clone(),
                connect_timeout: inner.connect_timeout,
                command_timeout: inner.command_timeout,
                shard_router: None,
            };
            Announcements::start(
                endpoint,
                channels.clone(),
                on_message.clone(),
                subscribed.clone(),
            )
        })
        .collect();
    listeners.0 = generation;
    inner.listening.store(generation, Ordering::Release);
    // Not under the lock: a fork meanwhile must not leave it locked in the
    // child, and other threads must not wait on it.
    drop(listeners);
    // Only in the original process. In a forked child, a timed wait here,
    // while the new listener threads start and the parent's listener
    // threads sit in the inherited parking table, tripped parking_lot's
    // queue assertion in 2 of 6 runs (`tests/sentinel_attack.rs`,
    // children_forked_while_a_sentinel_is_down_run_their_first_command;
    // 0 of 12 without the wait). The child then misses only a failover
    // that happens within the moment its listeners take to subscribe, and
    // still follows it from the first refused command.
    if generation == 1 {
        subscribed.wait(inner.command_timeout);
    }
}

impl Inner {
    /// The current master, asking the sentinels when we do not know it or
    /// `refresh` says the one we know failed.
    /// A change found this way (the old master refused or failed) is a
    /// switch like an announced one: the client is told.
    fn master(&self, refresh: bool) -> Result<Arc<SingleNode>> {
        let (node, replaced) = {
            let mut current = self.current.lock();
            if let Some(node) = current.as_ref().filter(|_| !refresh) {
                return Ok(node.clone());
            }
            let (host, port) = self.ask_sentinels()?;
            let node = self.node_at(host, port)?;
            if let Some(known) = current
                .as_ref()
                .filter(|known| known.server_identity() == node.server_identity())
            {
                // Still there: keep its pooled connections.
                return Ok(known.clone());
            }
            let node = Arc::new(node);
            let replaced = current.replace(node.clone()).is_some();
            (node, replaced)
        };
        if replaced {
            self.switched();
        }
        Ok(node)
    }

    /// The master changed: notes when, and tells the client.
    fn switched(&self) {
        *self.last_switch.lock() = Some(Instant::now());
        let hooks = self.on_switch.lock().clone();
        for hook in hooks {
            hook();
        }
    }

    fn node_at(&self, host: String, port: u16) -> Result<SingleNode> {
        let info = redis::ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| Error::from_redis("building the master's address", &e))?
            .set_redis_settings(self.master_settings.clone());
        let client =
            redis::Client::open(info).map_err(|e| Error::from_redis("opening the master", &e))?;
        Ok(SingleNode::new(
            client,
            self.connect_timeout,
            self.command_timeout,
            self.pool_size,
        ))
    }

    /// Whether `node` is still the master this client uses.
    fn is_current(&self, node: &Arc<SingleNode>) -> bool {
        self.current
            .lock()
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, node))
    }

    /// A sentinel announced something: moves to the master it names, if it
    /// names one for our master.
    ///
    /// Only an announcement that replaces the master this client uses
    /// counts: sentinels that lagged announce earlier failovers late, and
    /// a master deposed since still says it is a master for a while.
    fn heard(&self, channel: &[u8], payload: &[u8]) {
        let Some(announced) = announced_master(channel, payload, &self.master_name) else {
            return;
        };
        let (Ok(old), Ok(node)) = (
            self.node_at(announced.old.0, announced.old.1),
            self.node_at(announced.new.0, announced.new.1),
        ) else {
            return;
        };
        let replaces_ours = |current: &Option<Arc<SingleNode>>| {
            current
                .as_ref()
                .is_some_and(|c| c.server_identity() == old.server_identity())
        };
        if !replaces_ours(&self.current.lock()) {
            return;
        }
        // Believe it once the server itself says it is a master: a late
        // announcement from a lagging sentinel may name one since demoted.
        let is_master = node
            .info("replication")
            .is_ok_and(|text| text.lines().any(|line| line.trim() == "role:master"));
        if !is_master {
            return;
        }
        {
            let mut current = self.current.lock();
            if !replaces_ours(&current) {
                return;
            }
            *current = Some(Arc::new(node));
        }
        self.switched();
    }

    fn ask_sentinels(&self) -> Result<(String, u16)> {
        let _masked = crate::signals::mask();
        let mut failures = Vec::new();
        for sentinel in &self.sentinels {
            let answer =
                super::single::connect(sentinel, self.connect_timeout).and_then(|mut conn| {
                    conn.set_read_timeout(Some(self.command_timeout))?;
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&self.master_name)
                        .query::<Option<(String, u16)>>(&mut conn)
                });
            match answer {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => failures.push(format!(
                    "{} does not know a master named '{}'",
                    super::single::describe_addr(sentinel.get_connection_info().addr()),
                    self.master_name
                )),
                Err(e) => failures.push(format!(
                    "{}: {e}",
                    super::single::describe_addr(sentinel.get_connection_info().addr())
                )),
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "no sentinel could say where master '{}' is ({})",
                self.master_name,
                failures.join("; ")
            ),
        ))
    }
}

/// A failover an announcement reports: the master it replaced and the new one.
#[derive(Debug, PartialEq, Eq)]
struct Announced {
    old: (String, u16),
    new: (String, u16),
}

/// The failover an announcement reports for `master_name`, if it reports
/// one: `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`, or
/// `+promoted-slave slave <ip:port> <ip> <port> @ <name> <old-ip> <old-port>`.
fn announced_master(channel: &[u8], payload: &[u8], master_name: &str) -> Option<Announced> {
    let text = std::str::from_utf8(payload).ok()?;
    let words: Vec<&str> = text.split(' ').collect();
    let word = |i: usize| words.get(i).copied();
    let (name, old, new) = match channel {
        SWITCHED => (word(0)?, (word(1)?, word(2)?), (word(3)?, word(4)?)),
        PROMOTED if word(4) == Some("@") => (word(5)?, (word(6)?, word(7)?), (word(2)?, word(3)?)),
        _ => return None,
    };
    if name != master_name {
        return None;
    }
    let address = |(host, port): (&str, &str)| Some((host.to_string(), port.parse().ok()?));
    Some(Announced {
        old: address(old)?,
        new: address(new)?,
    })
}

/// Errors after which the master may have moved.
fn looks_like_failover(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) || was_refused(e)
}

/// A server that is not (or not yet) the master refused the command: it
/// did not run.
fn was_refused(e: &Error) -> bool {
    let message = e.message().to_ascii_lowercase();
    ["readonly", "read only replica", "loading", "masterdown"]
        .iter()
        .any(|sign| message.contains(sign))
}

impl Runner for SentinelNode {
    fn eval(&self, call: &Call<'_>) -> Result<redis::Value> {
        self.with_master(std::slice::from_ref(call), |node| node.eval(call))
    }

    fn eval_many(&self, calls: &[Call<'_>]) -> Result<Vec<Result<redis::Value>>> {
        self.with_master(calls, |node| {
            let replies = node.eval_many(calls)?;
            // A demoted master refuses each script: treat that as the node
            // failing, so the whole batch runs again on the new master.
            if let Some(Err(e)) = replies
                .iter()
                .find(|r| r.as_ref().is_err_and(looks_like_failover))
            {
                return Err(e.clone());
            }
            Ok(replies)
        })
    }

    fn eval_then_wait(
        &self,
        call: &Call<'_>,
        replicas: usize,
        timeout: Duration,
    ) -> Result<(redis::Value, usize)> {
        self.with_master(std::slice::from_ref(call), |node| {
            node.eval_then_wait(call, replicas, timeout)
        })
    }

    fn pubsub_source(&self) -> super::EndpointSource {
        let inner = self.inner.clone();
        // Asked at every (re)connection of the listener, so it follows the
        // master. (Releases also reach replicas, which replicate PUBLISH.)
        Arc::new(move || Ok(inner.master(false)?.endpoint()))
    }

    fn on_master_switch(&self, hook: MasterSwitched) {
        self.inner.on_switch.lock().push(hook);
    }

    fn last_master_switch(&self) -> Option<Instant> {
        *self.inner.last_switch.lock()
    }

    fn describe(&self) -> String {
        // `try_lock`: a lookup in progress holds the lock for up to a
        // timeout, and a description must not wait for it.
        let now = match self.inner.current.try_lock().as_deref() {
            Some(Some(node)) => format!(" (now {})", node.describe()),
            _ => String::new(),
        };
        format!(
            "master '{}'{now} via {} sentinel(s)",
            self.inner.master_name,
            self.inner.sentinels.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_old_and_new_master_from_either_announcement() {
        let failover = Some(Announced {
            old: ("10.0.0.1".to_string(), 6379),
            new: ("10.0.0.2".to_string(), 6380),
        });
        let switched = b"mymaster 10.0.0.1 6379 10.0.0.2 6380";
        assert_eq!(announced_master(SWITCHED, switched, "mymaster"), failover);
        let promoted = b"slave 10.0.0.2:6380 10.0.0.2 6380 @ mymaster 10.0.0.1 6379";
        assert_eq!(announced_master(PROMOTED, promoted, "mymaster"), failover);
    }

    #[test]
    fn ignores_other_masters_and_malformed_announcements() {
        let other = b"othermaster 10.0.0.1 6379 10.0.0.2 6380";
        assert_eq!(announced_master(SWITCHED, other, "mymaster"), None);
        let promoted_elsewhere = b"slave 10.0.0.2:6380 10.0.0.2 6380 @ othermaster 10.0.0.1 6379";
        assert_eq!(
            announced_master(PROMOTED, promoted_elsewhere, "mymaster"),
            None
        );
        for broken in [
            &b"mymaster 10.0.0.1 6379 10.0.0.2"[..],
            b"mymaster 10.0.0.1 6379 10.0.0.2 port",
            b"",
            b"\xff\xfe",
        ] {
            assert_eq!(announced_master(SWITCHED, broken, "mymaster"), None);
        }
        // A promoted sentinel or a master in the wrong shape.
        assert_eq!(
            announced_master(PROMOTED, b"sentinel a b c d e f", "mymaster"),
            None
        );
        assert_eq!(
            announced_master(PROMOTED, b"slave a:1 a 1 @ mymaster b", "mymaster"),
            None
        );
        assert_eq!(
            announced_master(
                b"+sdown",
                b"mymaster 10.0.0.1 6379 10.0.0.2 6380",
                "mymaster"
            ),
            None
        );
    }
}
