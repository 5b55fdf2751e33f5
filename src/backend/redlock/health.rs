//! What a Redlock client remembers about each master: whether it is down
//! (so operations skip it instead of paying its timeout again), and which
//! releases it is owed (commands whose outcome there was unknown). One
//! recovery thread per master that needs it re-probes the master with
//! back-off, marks it up when it answers, and then sends what it is owed;
//! the thread ends when the master is up and owes nothing.
//!
//! It also remembers each master's current run (`INFO server`: run id and
//! uptime), read again whenever a new connection to it was opened, so that
//! Redlock can tell a master that restarted, and with it lost the locks it
//! had granted, from one that kept them ([`Master::uptime`]).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::sync::Mutex;

use super::clock::Clock;
use super::is_transport;
use super::node::{MasterNode, ServerRun};
use crate::backend::script_calls::{parse_release, release_call};
use crate::backend::{Op, Released};
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::keys::LockKeys;

/// The first pause between probes of a master that is down; it doubles up
/// to [`MAX_BACKOFF`], so a master that comes back is used again within
/// about a second, and a dead one costs a probe a second in the background.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Clean-ups one master may owe at most; past this the oldest are dropped
/// (they are the likeliest to have expired on their own). A master that
/// stays down is owed one release per hold released meanwhile.
const MAX_OWED: usize = 1024;

/// One master, its health and what it is owed.
pub(super) struct Master<N, C> {
    pub(super) node: N,
    /// The Redlock's clock: when the master went down, when a clean-up is
    /// no longer needed.
    clock: C,
    /// Per process: the recovery thread locks it, and a child forked
    /// meanwhile starts with a fresh record instead of waiting on it.
    health: PerProcess<Mutex<Health>>,
    /// Handed to the recovery thread, which must not keep a master (and
    /// its client) alive after the client is dropped.
    me: Weak<Master<N, C>>,
}

#[derive(Default)]
struct Health {
    /// Since when, and why, the master does not answer; `None` while it does.
    down: Option<(Instant, Error)>,
    /// The fork generation the recovery thread runs in, if one runs (a
    /// forked child has no such thread even if its parent had one).
    recovering: Option<u64>,
    /// Oldest first.
    owed: VecDeque<Cleanup>,
    /// The master's current run, as last read.
    run: Option<RunSeen>,
    /// The connection count at which the master refused `INFO server` (an
    /// ACL, a renamed command): not asked again on the same connections.
    run_unreadable: Option<u64>,
}

/// What the client last read of a master's run.
struct RunSeen {
    id: String,
    /// Its uptime at `read_at` (on the Redlock's clock).
    uptime: Duration,
    read_at: Instant,
    /// When this run last answered us: a restart that ends it comes later.
    alive_at: Instant,
    /// The node's count of opened connections when it was read: while no
    /// new connection is opened, every answer comes from this run.
    connections: u64,
}

/// A release to send to a master once it answers again.
pub(super) struct Cleanup {
    keys: LockKeys,
    /// The hold's own token: a late release touches no other hold.
    token: String,
    reentrant: bool,
    until: Instant,
    /// After an acquire with an unknown outcome, the acquire may still run
    /// after our release (a stopped server resumes with it queued), so "not
    /// ours" proves nothing: keep trying until `until`.
    retry_absent: bool,
}

impl Cleanup {
    /// Takes back an acquire that may run on the master later.
    pub(super) fn after_acquire(
        keys: LockKeys,
        token: String,
        reentrant: bool,
        until: Instant,
    ) -> Self {
        Cleanup {
            keys,
            token,
            reentrant,
            until,
            retry_absent: true,
        }
    }

    /// Makes sure of a release whose reply was lost; one answer settles it.
    pub(super) fn after_release(
        keys: LockKeys,
        token: String,
        reentrant: bool,
        until: Instant,
    ) -> Self {
        Cleanup {
            keys,
            token,
            reentrant,
            until,
            retry_absent: false,
        }
    }
}

impl<N: MasterNode, C: Clock> Master<N, C> {
    pub(super) fn new(node: N, clock: C) -> Arc<Self> {
        Arc::new_cyclic(|me| Master {
            node,
            clock,
            health: PerProcess::new(|| Mutex::new(Health::default()), |_| {}),
            me: me.clone(),
        })
    }

    /// Whether operations should skip this master for now.
    pub(super) fn is_down(&self) -> bool {
        let mut health = self.health.get().lock();
        if health.down.is_none() {
            return false;
        }
        // A forked child inherits "down" but not the thread that would
        // ever say "up" again.
        self.ensure_recovery(&mut health);
        health.down.is_some()
    }

    /// The master answered an operation.
    pub(super) fn answered(&self) {
        let mut health = self.health.get().lock();
        health.down = None;
    }

    /// The master did not answer (timeout, refused or dropped connection).
    pub(super) fn failed(&self, error: Error) {
        let mut health = self.health.get().lock();
        let since = health
            .down
            .as_ref()
            .map_or_else(|| self.clock.now(), |d| d.0);
        health.down = Some((since, error));
        self.ensure_recovery(&mut health);
    }

    /// Why an operation did not ask this master (the operation adds which
    /// one it was).
    pub(super) fn skipped(&self) -> Error {
        let health = self.health.get().lock();
        let why = health.down.as_ref().map_or_else(String::new, |(since, e)| {
            format!(
                " for {:.1?} ({e})",
                self.clock.now().saturating_duration_since(*since)
            )
        });
        Error::new(
            ErrorKind::Connection,
            format!(
                "skipped {}: it has not answered{why}; it is probed again in the background",
                self.node.describe()
            ),
        )
    }

    /// How long the master's current run has been up, as far as this
    /// client can tell: read with `INFO server` when a new connection was
    /// opened to it since the last reading (a new run may lie behind it),
    /// else counted on from that reading. A run id that changed since the
    /// client last saw the old run answer bounds the uptime by the time
    /// since then, whatever the server says. `None` when the master does
    /// not say (it refused `INFO`, or did not answer it).
    pub(super) fn uptime(&self) -> Option<Duration> {
        let opened = self.node.connections_opened();
        {
            let mut health = self.health.get().lock();
            let now = self.clock.now();
            if let Some(run) = health.run.as_mut().filter(|r| r.connections == opened) {
                run.alive_at = now;
                return Some(run.uptime + now.saturating_duration_since(run.read_at));
            }
            if health.run_unreadable == Some(opened) {
                return None;
            }
        }
        // Asked without holding the lock: a slow answer must not hold up
        // the operations of other threads.
        let read: Result<ServerRun> = self.node.server_run();
        let now = self.clock.now();
        let mut health = self.health.get().lock();
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                if !is_transport(&e) {
                    health.run_unreadable = Some(opened);
                }
                return None;
            }
        };
        let mut uptime = read.uptime;
        if let Some(old) = health.run.as_ref().filter(|old| old.id != read.id) {
            uptime = uptime.min(now.saturating_duration_since(old.alive_at));
        }
        health.run = Some(RunSeen {
            id: read.id,
            uptime,
            read_at: now,
            alive_at: now,
            connections: opened,
        });
        Some(uptime)
    }

    /// Queues a release for the recovery thread.
    pub(super) fn owe(&self, cleanup: Cleanup) {
        let mut health = self.health.get().lock();
        let now = self.clock.now();
        while health
            .owed
            .front()
            .is_some_and(|c| c.until <= now || health.owed.len() >= MAX_OWED)
        {
            health.owed.pop_front();
        }
        health.owed.push_back(cleanup);
        self.ensure_recovery(&mut health);
    }

    fn ensure_recovery(&self, health: &mut Health) {
        let generation = crate::fork::generation();
        if health.recovering == Some(generation) {
            return;
        }
        let me = self.me.clone();
        let spawned = crate::thread::spawn("latchkey-redlock-probe", move || recover(me));
        if spawned.is_ok() {
            health.recovering = Some(generation);
        } else {
            // Without a thread nobody would say "up" again: ask the master
            // inline (paying its timeout) rather than skip it for ever.
            health.down = None;
            health.recovering = None;
        }
    }

    /// Sends what the master is owed; true when it is up, owes nothing
    /// more and the recovery thread may end (decided under the lock, so a
    /// clean-up queued meanwhile is never stranded).
    fn settle(&self) -> bool {
        let owed = std::mem::take(&mut self.health.get().lock().owed);
        let mut kept = VecDeque::new();
        for cleanup in owed {
            if self.clock.now() >= cleanup.until {
                continue;
            }
            match self.release(&cleanup) {
                Ok(Released::Free | Released::StillHeld) => {}
                Ok(_) if !cleanup.retry_absent => {}
                Ok(_) => kept.push_back(cleanup),
                Err(e) => {
                    if is_transport(&e) {
                        self.failed(e);
                    }
                    kept.push_back(cleanup);
                }
            }
        }
        let mut health = self.health.get().lock();
        // Kept ones are older than any queued meanwhile: oldest first.
        let newer = std::mem::take(&mut health.owed);
        kept.extend(newer);
        health.owed = kept;
        if health.owed.is_empty() && health.down.is_none() {
            health.recovering = None;
            return true;
        }
        false
    }

    fn release(&self, cleanup: &Cleanup) -> Result<Released> {
        let call = release_call(&cleanup.keys, &cleanup.token, cleanup.reentrant, false);
        self.node
            .eval(&call)
            .and_then(parse_release)
            .map_err(|e| e.context(Op::CleanUp(&cleanup.keys)))
    }
}

/// The recovery thread of one master.
fn recover<N: MasterNode, C: Clock>(me: Weak<Master<N, C>>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(master) = me.upgrade() else {
            return;
        };
        let down = master.health.get().lock().down.is_some();
        if down {
            // The probe runs first on its connection: once it is answered,
            // a command that was queued in a stopped server has run too,
            // so our release comes after the acquire it takes back.
            match master.node.ping() {
                Ok(()) => master.answered(),
                Err(e) => master.failed(e),
            }
        }
        if master.health.get().lock().down.is_none() && master.settle() {
            return;
        }
        drop(master);
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
