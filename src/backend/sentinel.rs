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
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::sync::Mutex;
use redis::IntoConnectionInfo;

use super::single::{resend_safe, SingleNode};
use super::{Call, MasterSwitched, PubSubEndpoint, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::pubsub::{Announcements, OnAnnouncement, Subscribed};

/// The sentinel channels that name a new master: `+promoted-slave` comes
/// first, from the sentinel running the failover, when the replica has
/// become a master; `+switch-master` from every sentinel once it knows.
const PROMOTED: &[u8] = b"+promoted-slave";
const SWITCHED: &[u8] = b"+switch-master";

/// How many times a command whose master was replaced while it ran goes
/// again on the new one.
const REPLACED_MASTER_ROUNDS: usize = 3;

mod lookup;

pub(crate) struct SentinelNode {
    inner: Arc<Inner>,
}

/// The master in use and the configuration epoch it is known under.
struct Current {
    node: Arc<SingleNode>,
    epoch: u64,
}

struct Inner {
    sentinels: Vec<redis::Client>,
    master_name: String,
    /// Database, user and password for the master (not the sentinels).
    master_settings: redis::RedisConnectionInfo,
    connect_timeout: Duration,
    command_timeout: Duration,
    pool_size: usize,
    /// The spin limit of each node's reads (see `backend::wire`).
    spin: Duration,
    tls: Option<Arc<crate::tls::Tls>>,
    /// The master in use, per process: a forked child starts without one
    /// rather than wait on a lock a thread of its parent held at the fork
    /// (a lookup holds none while it waits for the sentinels, but a
    /// thread may be anywhere).
    current: PerProcess<Mutex<Option<Current>>>,
    /// Who to tell when the master changes.
    on_switch: OnceLock<MasterSwitched>,
    /// When `current` last changed from one master to another: nanoseconds
    /// since `epoch_start`, plus one (0: never). Lock-free, like the
    /// hook, because library threads read them at any time.
    last_switch: AtomicU64,
    epoch_start: Instant,
    /// The listeners to the sentinels' announcements, per process (None:
    /// not started yet). Held only to start them, never while waiting.
    listeners: PerProcess<Mutex<Option<Vec<Announcements>>>>,
    /// The fork generation + 1 that started listening (0: none yet), read
    /// without a lock on every call.
    listening: AtomicU64,
}

pub(crate) struct SentinelConfig {
    pub(crate) sentinels: Vec<redis::Client>,
    pub(crate) master_name: String,
    pub(crate) master_settings: redis::RedisConnectionInfo,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) pool_size: usize,
    pub(crate) spin: Duration,
    /// Set when the sentinels are `rediss://`: they and the master are
    /// reached over TLS.
    pub(crate) tls: Option<Arc<crate::tls::Tls>>,
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
                spin: config.spin,
                tls: config.tls,
                current: PerProcess::new(|| Mutex::new(None), |_| {}),
                on_switch: OnceLock::new(),
                last_switch: AtomicU64::new(0),
                epoch_start: Instant::now(),
                listeners: PerProcess::new(|| Mutex::new(None), |_| {}),
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
    // This process's (a forked child's listeners are its own: the
    // parent's threads are not in it, and their sockets are the parent's).
    let mut listeners = inner.listeners.get().lock();
    if listeners.is_some() {
        return;
    }
    let weak = Arc::downgrade(inner);
    let on_message: OnAnnouncement = Arc::new(move |channel, payload| {
        if let Some(inner) = Weak::upgrade(&weak) {
            inner.heard(channel, payload);
        }
    });
    let channels = vec![PROMOTED.to_vec(), SWITCHED.to_vec()];
    let subscribed = Arc::new(Subscribed::new(inner.sentinels.len()));
    let started = inner
        .sentinels
        .iter()
        .filter_map(|sentinel| {
            let endpoint = PubSubEndpoint {
                info: sentinel.get_connection_info().clone(),
                tls: inner.tls.clone(),
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
    *listeners = Some(started);
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
    /// `refresh` says the one we know failed. A change found this way (the
    /// old master refused or failed) is a switch like an announced one: the
    /// client is told. No lock is held while the sentinels are asked.
    fn master(&self, refresh: bool) -> Result<Arc<SingleNode>> {
        if !refresh {
            if let Some(current) = self.current.get().lock().as_ref() {
                return Ok(current.node.clone());
            }
        }
        let found = lookup::ask_sentinels(
            &self.sentinels,
            self.tls.clone(),
            &self.master_name,
            self.connect_timeout,
            self.command_timeout,
        )?;
        let node = self.node_at(found.host, found.port)?;
        let (node, replaced) = {
            let mut current = self.current.get().lock();
            match current.as_mut() {
                Some(known) if known.node.server_identity() == node.server_identity() => {
                    // Still there: keep its pooled connections.
                    known.epoch = known.epoch.max(found.epoch);
                    (known.node.clone(), false)
                }
                // The sentinels that answered know less than we do (a
                // failover we followed is newer than their answer).
                Some(known) if found.epoch < known.epoch => (known.node.clone(), false),
                _ => {
                    let node = Arc::new(node);
                    let replaced = current.is_some();
                    if replaced {
                        self.note_switch();
                    }
                    *current = Some(Current {
                        node: node.clone(),
                        epoch: found.epoch,
                    });
                    (node, replaced)
                }
            }
        };
        if replaced {
            self.tell_client();
        }
        Ok(node)
    }

    /// Notes that the master changes now; before `current` changes, so a
    /// request sent to the new master is never taken for one sent before.
    fn note_switch(&self) {
        let since = self.epoch_start.elapsed().as_nanos();
        let since = u64::try_from(since).unwrap_or(u64::MAX - 1);
        self.last_switch.store(since + 1, Ordering::Release);
    }

    fn last_switch(&self) -> Option<Instant> {
        match self.last_switch.load(Ordering::Acquire) {
            0 => None,
            since => Some(self.epoch_start + Duration::from_nanos(since - 1)),
        }
    }

    fn tell_client(&self) {
        if let Some(hook) = self.on_switch.get() {
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
            self.spin,
        )
        .with_tls(self.tls.clone()))
    }

    /// Whether `node` is still the master this client uses.
    fn is_current(&self, node: &Arc<SingleNode>) -> bool {
        self.current
            .get()
            .lock()
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(&current.node, node))
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
        let replaces_ours = |current: &Option<Current>| {
            current
                .as_ref()
                .is_some_and(|c| c.node.server_identity() == old.server_identity())
        };
        if !replaces_ours(&self.current.get().lock()) {
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
            let mut current = self.current.get().lock();
            let Some(known) = current.as_ref().filter(|_| replaces_ours(&current)) else {
                return;
            };
            // The failover's epoch is newer than the one we knew: a lookup
            // that answers with the old one is a sentinel that lags.
            let epoch = known.epoch + 1;
            self.note_switch();
            *current = Some(Current {
                node: Arc::new(node),
                epoch,
            });
        }
        self.tell_client();
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
    // The server's error code, as a word of its own: the message also
    // names the server, and a host name may contain these letters (taking
    // a timed-out release for a refusal would send it twice).
    let message = e.message();
    let is_code = |code: &str| {
        message.match_indices(code).any(|(at, _)| {
            let before = message[..at].chars().next_back();
            let after = message[at + code.len()..].chars().next();
            matches!(before, None | Some(' ')) && matches!(after, None | Some(' ' | ':'))
        })
    };
    ["READONLY", "LOADING", "MASTERDOWN"]
        .into_iter()
        .any(is_code)
        || message.contains("read only replica")
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

    fn eval_many_then_wait(
        &self,
        calls: &[Call<'_>],
        replicas: usize,
        timeout: Duration,
    ) -> Result<Vec<Result<(redis::Value, usize)>>> {
        self.with_master(calls, |node| {
            let replies = node.eval_many_then_wait(calls, replicas, timeout)?;
            // As in `eval_many`: a demoted master refuses each script.
            if let Some(Err(e)) = replies
                .iter()
                .find(|r| r.as_ref().is_err_and(looks_like_failover))
            {
                return Err(e.clone());
            }
            Ok(replies)
        })
    }

    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        // After a failover the scan starts again on the new master: keys
        // seen before are visited again, which callers allow for.
        let visit = std::cell::RefCell::new(visit);
        self.with_master(&[], |node| node.scan(pattern, &mut **visit.borrow_mut()))
    }

    fn pubsub_source(&self) -> super::EndpointSource {
        let inner = self.inner.clone();
        // Asked at every (re)connection of the listener, so it follows the
        // master. (Releases also reach replicas, which replicate PUBLISH.)
        Arc::new(move || Ok(inner.master(false)?.endpoint()))
    }

    fn on_master_switch(&self, hook: MasterSwitched) {
        // One client per backend, so one hook.
        let _ = self.inner.on_switch.set(hook);
    }

    fn last_master_switch(&self) -> Option<Instant> {
        self.inner.last_switch()
    }

    fn describe(&self) -> String {
        // `try_lock`: a lookup in progress holds the lock for up to a
        // timeout, and a description must not wait for it.
        let now = match self.inner.current.get().try_lock().as_deref() {
            Some(Some(current)) => format!(" (now {})", current.node.describe()),
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
    fn a_refusal_is_read_from_the_error_code_not_from_a_host_name() {
        let error = |text: &str| Error::new(ErrorKind::Server, text);
        for refused in [
            "acquiring lock 'x': on redis at 10.0.0.1:6379: READONLY: You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "on redis at h:1: MASTERDOWN Link with MASTER is down",
        ] {
            assert!(was_refused(&error(refused)), "{refused}");
        }
        for not_refused in [
            "releasing lock 'x': on redis at readonly.example:6379: timed out",
            "on redis at loading-dock:6379: connection reset",
            "on redis at db.MASTERDOWN.lan:6379: broken pipe",
        ] {
            assert!(!was_refused(&error(not_refused)), "{not_refused}");
        }
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
