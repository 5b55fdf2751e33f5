//! A master managed by Redis Sentinel: the sentinels say where the master
//! is, and the node follows a failover. A command that finds the old master
//! gone or demoted (connection refused, `READONLY`) asks the sentinels again
//! and runs once more on the new master.
//!
//! What a failover can still lose: replication is asynchronous, so a lock
//! written to the old master just before it failed may not have reached the
//! replica that is promoted; another client can then take the same lock.
//! `ClientBuilder::wait_for_replicas` narrows that window (the acquire
//! returns only once N replicas have the lock), fencing tokens close it for
//! resources that check them.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::IntoConnectionInfo;

use super::single::{resend_safe, SingleNode};
use super::{Call, Runner};
use crate::error::{Error, ErrorKind, Result};

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
    fn with_master<T>(
        &self,
        calls: &[Call<'_>],
        op: impl Fn(&SingleNode) -> Result<T>,
    ) -> Result<T> {
        let node = self.inner.master(false)?;
        match op(&node) {
            Err(e) if looks_like_failover(&e) => {
                let fresh = self.inner.master(true)?;
                if was_refused(&e) || resend_safe(calls) {
                    op(&fresh)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }
}

impl Inner {
    /// The current master, asking the sentinels when we do not know it or
    /// `refresh` says the one we know failed.
    fn master(&self, refresh: bool) -> Result<Arc<SingleNode>> {
        let mut current = self.current.lock();
        if let Some(node) = current.as_ref().filter(|_| !refresh) {
            return Ok(node.clone());
        }
        let (host, port) = self.ask_sentinels()?;
        let info = redis::ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| Error::from_redis("building the master's address", &e))?
            .set_redis_settings(self.master_settings.clone());
        let client =
            redis::Client::open(info).map_err(|e| Error::from_redis("opening the master", &e))?;
        let node = Arc::new(SingleNode::new(
            client,
            self.connect_timeout,
            self.command_timeout,
            self.pool_size,
        ));
        *current = Some(node.clone());
        Ok(node)
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
    fn eval(&self, what: &str, call: &Call<'_>) -> Result<redis::Value> {
        self.with_master(std::slice::from_ref(call), |node| node.eval(what, call))
    }

    fn eval_many(&self, what: &str, calls: &[Call<'_>]) -> Result<Vec<Result<redis::Value>>> {
        self.with_master(calls, |node| {
            let replies = node.eval_many(what, calls)?;
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
        what: &str,
        call: &Call<'_>,
        replicas: usize,
        timeout: Duration,
    ) -> Result<(redis::Value, usize)> {
        self.with_master(std::slice::from_ref(call), |node| {
            node.eval_then_wait(what, call, replicas, timeout)
        })
    }

    fn pubsub_source(&self) -> super::EndpointSource {
        let inner = self.inner.clone();
        // Asked at every (re)connection of the listener, so it follows the
        // master. (Releases also reach replicas, which replicate PUBLISH.)
        Arc::new(move || Ok(inner.master(false)?.endpoint()))
    }

    fn describe(&self) -> String {
        format!(
            "master '{}' via {} sentinel(s)",
            self.inner.master_name,
            self.inner.sentinels.len()
        )
    }
}
