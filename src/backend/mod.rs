//! Where locks live. Every deployment shape implements [`Backend`]: the
//! lock operations (acquire, release, extend, inspect, ...) either on one
//! node, as [`OneNodeBackend`] over a [`Runner`] (a plain server
//! [`single::SingleNode`], a Sentinel-managed master
//! [`sentinel::SentinelNode`], or a Redis Cluster [`cluster::ClusterNode`],
//! which routes each script to the node of its slot), or by quorum over
//! several independent masters ([`redlock::Redlock`]). The lock logic above
//! does not know which one it talks to.

pub(crate) mod cluster;
pub(crate) mod redlock;
pub(crate) mod script_calls;
pub(crate) mod sentinel;
pub(crate) mod single;
mod wire;
pub(crate) use wire::{default_spin, never_spin_on_this_thread, MAX_SPIN};

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::info::{FencedWrite, LockInfo, SemaphoreInfo};
use crate::keys::LockKeys;
use crate::lease::Lease;
use crate::scripts::LuaScript;

/// One script invocation: the script, its keys and its arguments. The
/// arguments borrow what they can (tokens, channel names): the watchdog
/// builds one call per 200 leases every period, and copying each lease's
/// token cost more client CPU than the renewal's round trip.
#[derive(Clone)]
pub(crate) struct Call<'a> {
    pub(crate) script: &'static LuaScript,
    pub(crate) keys: Vec<&'a [u8]>,
    pub(crate) args: Vec<Cow<'a, [u8]>>,
}

// Where release listeners connect: the listener module defines it, each
// backend says it.
pub(crate) use crate::pubsub::{EndpointSource, PubSubEndpoint, ShardRouter};

/// The outcome of one acquire attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Ours, with this fencing token.
    Acquired(u64),
    /// Someone else's; their lease ends in about this long (zero: unknown).
    Held(Duration),
    /// Not granted, though no master says it is held: too few masters
    /// count yet (Redlock: masters younger than the restart delay, whose
    /// lost locks may still be held). Worth asking again in about this
    /// long; the error (`NoQuorum`) says why, and is what a caller gets
    /// when it stops waiting.
    Withheld(Duration, Error),
}

/// The outcome of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Released {
    /// Released; the lock is free (or handed to waiters).
    Free,
    /// A reentrant hold was given back; outer holds remain.
    StillHeld,
    /// The lock was not ours (any more).
    NotOwner,
}

/// What an attempt does in the lock's waiter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queueing<'a> {
    /// Nothing (a single try; a deployment without a queue).
    No,
    /// Queue this waiter if the lock is held (or renew its entry).
    Join(&'a str),
    /// The last attempt (the deadline has passed): leave the queue whatever
    /// the outcome, so giving up costs no extra round trip.
    Leave(&'a str),
}

impl<'a> Queueing<'a> {
    /// The waiter id ("" for none).
    pub(crate) fn waiter(self) -> &'a str {
        match self {
            Queueing::No => "",
            Queueing::Join(w) | Queueing::Leave(w) => w,
        }
    }
}

/// How long a queued waiter's entry lasts unless it asks again: a release
/// skips entries that ran out (their waiters died), so a dead waiter is
/// handed the lock at most during this long after its last attempt.
pub(crate) const QUEUE_ENTRY_LEASE: Duration = Duration::from_secs(15);

/// One acquire attempt: which hold asks for which lock.
pub(crate) struct AcquireArgs<'a> {
    pub(crate) keys: &'a LockKeys,
    /// The reentrant owner (the Lock handle's token); unused by plain locks.
    pub(crate) owner: &'a str,
    /// The new hold's token: unique per acquisition, the same on every
    /// retry of one acquisition (so a retry finds what it took).
    pub(crate) hold: &'a str,
    pub(crate) ttl: Duration,
    pub(crate) reentrant: bool,
    /// The caller has been waiting and may take the lock while it is
    /// reserved for woken waiters.
    pub(crate) waited: bool,
    /// Reentrant: the handle has a live hold here, so a tenure it owns in
    /// Redis may be nested into (otherwise it is stale: start a new one).
    pub(crate) nest: bool,
    /// Reentrant: the highest fencing token the handle was ever given (0
    /// for none); the script never returns a lower one, and nests only into
    /// a tenure whose token is at least this.
    pub(crate) known_token: u64,
    /// Reentrant: the tokens of the handle's live holds; a renewed tenure
    /// keeps their fields (it drops only holds that had ended).
    pub(crate) live_holds: &'a [String],
    /// What the attempt does in the waiter queue, when the acquisition
    /// will wait and the backend queues waiters (see
    /// [`Backend::queues_waiters`]): an attempt that finds the lock held
    /// queues the waiter, one that takes it (or the reservation a release
    /// made for it), or the last one, leaves the queue.
    pub(crate) queue: Queueing<'a>,
    /// A fair lock (plain locks only): the attempt never takes a free lock
    /// while a waiter that arrived before it is queued; it hands the lock
    /// to that waiter instead.
    pub(crate) fair: bool,
    /// A read-write lock's writer: its readers' keys (the lock is held
    /// while any reader's lease lasts).
    pub(crate) readers: Option<&'a LockKeys>,
}

/// One attempt to take a read lease of a read-write lock.
pub(crate) struct ReadArgs<'a> {
    pub(crate) writer: &'a LockKeys,
    pub(crate) readers: &'a LockKeys,
    /// The new hold's token ('1:' and a random part, as a one-permit
    /// semaphore hold: the readers are a lease set); the same on every
    /// retry.
    pub(crate) hold: &'a str,
    pub(crate) ttl: Duration,
}

/// One attempt to take permits of a semaphore.
pub(crate) struct PermitArgs<'a> {
    pub(crate) keys: &'a LockKeys,
    /// The new hold's token: the number of permits, ':', a random part
    /// (see src/scripts/permit_acquire.lua); the same on every retry.
    pub(crate) hold: &'a str,
    pub(crate) ttl: Duration,
    /// Permits in all.
    pub(crate) size: u32,
    /// Permits this hold takes.
    pub(crate) permits: u32,
}

/// Why a deployment refuses semaphores.
fn semaphores_unsupported(deployment: &str) -> Error {
    Error::invalid(format!(
        "semaphores are not supported on {deployment}: over independent masters \
         (Redlock) a majority per hold does not bound the holders (with 3 masters \
         and 2 permits, holders on masters 1+2, 2+3 and 1+3 each have a majority); \
         use one server, Sentinel or Cluster"
    ))
}

/// One fenced write.
pub(crate) struct FencedWriteArgs<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) resource: &'a str,
    pub(crate) token: u64,
    pub(crate) holder: &'a str,
    pub(crate) value: &'a [u8],
}

/// One lease to extend.
pub(crate) struct ExtendItem<'a> {
    pub(crate) keys: &'a LockKeys,
    pub(crate) token: &'a str,
    pub(crate) reentrant: bool,
    pub(crate) ttl: Duration,
}

impl<'a> ExtendItem<'a> {
    /// What the backend needs to extend `lease` to `ttl`.
    pub(crate) fn of(lease: &'a Lease, ttl: Duration) -> Self {
        ExtendItem {
            keys: lease.keys(),
            token: lease.token(),
            reentrant: lease.reentrant(),
            ttl,
        }
    }
}

/// The lock operations, whatever the deployment.
pub(crate) trait Backend: Send + Sync + 'static {
    /// One acquire attempt.
    fn acquire(&self, args: &AcquireArgs<'_>) -> Result<Attempt>;

    /// One attempt to take permits of a semaphore. A deployment on which
    /// a semaphore is not sound (Redlock) refuses with `InvalidArgument`.
    fn acquire_permits(&self, _args: &PermitArgs<'_>) -> Result<Attempt> {
        Err(semaphores_unsupported(&self.describe()))
    }

    /// One attempt to take a read lease of a read-write lock; refused as
    /// [`acquire_permits`](Self::acquire_permits) is.
    fn acquire_read(&self, _args: &ReadArgs<'_>) -> Result<Attempt> {
        Err(semaphores_unsupported(&self.describe()))
    }

    /// Who holds a semaphore's permits: at most `limit` holds listed.
    fn inspect_permits(&self, _keys: &LockKeys, _limit: usize) -> Result<SemaphoreInfo> {
        Err(semaphores_unsupported(&self.describe()))
    }

    /// Whether the deployment is several independent masters (Redlock),
    /// which agree only by majority: primitives whose state must live on
    /// one master (semaphores, elections) refuse it when they are made.
    fn independent_masters(&self) -> bool {
        false
    }

    /// Runs one script of a primitive that needs one source of truth (an
    /// election's announcement), on the node of its keys. Deployments of
    /// several independent masters (Redlock) refuse with `InvalidArgument`;
    /// `what` names the primitive in the message.
    fn eval_on_one_node(&self, _call: &Call<'_>, what: &str) -> Result<redis::Value> {
        Err(Error::invalid(format!(
            "{what} is not supported on {}: its state must live on one master \
             (use one server, Sentinel or Cluster)",
            self.describe()
        )))
    }

    /// [`eval_on_one_node`](Self::eval_on_one_node) of a script that
    /// makes a hold (a read-write lock's downgrade), and whether enough
    /// replicas confirmed it: with [`WaitForReplicas`], a hold too few
    /// replicas confirmed does not count as held (a failover may lose it),
    /// as for an acquire.
    fn eval_on_one_node_confirmed(
        &self,
        call: &Call<'_>,
        what: &str,
    ) -> Result<(redis::Value, bool)> {
        self.eval_on_one_node(call, what).map(|value| (value, true))
    }

    /// Release of one hold (by its token), waking waiters when the lock
    /// becomes free.
    fn release(&self, keys: &LockKeys, hold: &str, reentrant: bool) -> Result<Released>;

    /// Owner-checked extension of many leases in one round trip; one
    /// result per item (true: extended; false: not ours any more). The outer
    /// error means the round trip itself failed.
    fn extend(&self, items: &[ExtendItem<'_>]) -> Result<Vec<Result<bool>>>;

    /// Wakes the waiters of a lock whose hold `token` was found gone
    /// without a release (deleted, evicted, expired): sends the release
    /// message if the key is absent. Best effort: a waiter also re-checks
    /// on its own (see `acquire`).
    fn announce_free(&self, keys: &LockKeys, token: &str) -> Result<()>;

    /// Who holds the lock, if anyone, and (when the backend queues waiters)
    /// the first `queue_limit` live waiters of its queue and how many there
    /// are; 0 skips the queue (a caller that only needs the holder).
    fn inspect(&self, keys: &LockKeys, queue_limit: usize) -> Result<Option<LockInfo>>;

    /// [`inspect`](Self::inspect) of many locks, pipelined where the
    /// deployment allows: one result per lock. The outer error means the
    /// round trip itself failed.
    fn inspect_many(
        &self,
        keys: &[LockKeys],
        queue_limit: usize,
    ) -> Result<Vec<Result<Option<LockInfo>>>> {
        Ok(keys.iter().map(|k| self.inspect(k, queue_limit)).collect())
    }

    /// Visits the keys matching the Redis glob `pattern` with `SCAN` (never
    /// `KEYS`), on every master that holds locks, until `visit` returns
    /// false. A key may be visited more than once. Deployments that cannot
    /// list their keys yet say so with an `InvalidArgument` error.
    fn scan(&self, _pattern: &[u8], _visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        Err(Error::invalid(format!(
            "listing locks is not supported on this deployment ({}) yet",
            self.describe()
        )))
    }

    /// Whether the hold `hold` still owns the lock (read only).
    fn hold_exists(&self, keys: &LockKeys, hold: &str, reentrant: bool) -> Result<bool>;

    /// Deletes the lock whoever holds it; whether there was one.
    fn force_unlock(&self, keys: &LockKeys, holder: &str) -> Result<bool>;

    /// Compare-and-set of a resource by fencing token; `holder` is the
    /// writing hold's token ("" when unknown): an equal token is accepted
    /// only from the same holder.
    fn fenced_write(&self, write: &FencedWriteArgs<'_>) -> Result<FencedWrite>;

    /// Reads a fenced resource.
    fn fenced_read(&self, key: &[u8], resource: &str) -> Result<Option<(u64, Vec<u8>)>>;

    /// Where waiters subscribe to release messages (one listener each).
    fn pubsub_sources(&self) -> Vec<EndpointSource>;

    /// Whether waiters queue in Redis, so that a release wakes only the
    /// waiter it hands the lock to. Redlock's masters share no queue: a
    /// release there wakes every waiter.
    fn queues_waiters(&self) -> bool {
        false
    }

    /// Removes a waiter that gives up from the lock's queue, passing on a
    /// reservation a release made for it meanwhile. Best effort: an entry
    /// left behind runs out after its lease.
    fn leave_queue(&self, _keys: &LockKeys, _waiter: &str) -> Result<()> {
        Ok(())
    }

    /// Whether a failed attempt gives back what it took (Redlock undoes a
    /// minority). The next attempt then needs a hold token of its own: an
    /// undo that reaches a master late must not release the retry that won.
    fn undoes_failed_attempts(&self) -> bool {
        false
    }

    /// Asks to be told when the deployment moves to another master (a
    /// Sentinel failover announced by the sentinels). Deployments that
    /// cannot tell ignore it.
    fn on_master_switch(&self, _hook: MasterSwitched) {}

    /// When the deployment last moved to another master, if ever: a reply
    /// to a request sent before then may come from the old one, so what it
    /// confirmed is checked again on the new one.
    fn last_master_switch(&self) -> Option<Instant> {
        None
    }

    /// The server(s), for messages; never with a password.
    fn describe(&self) -> String;
}

/// Called, on a library thread, after the deployment moved to another
/// master: the client must listen for releases there and re-check every
/// lease it holds, since the old master may have granted locks the new
/// one never heard of.
pub(crate) type MasterSwitched = Arc<dyn Fn() + Send + Sync>;

/// How many keys one `SCAN` call looks at: large enough to cross a big
/// database in few round trips, small enough that each call blocks Redis
/// for well under a millisecond.
pub(crate) const SCAN_COUNT: usize = 1000;

/// Leases extended by one script during renewal: large enough to make the
/// per-script cost vanish, small enough that one script blocks Redis for
/// well under a millisecond.
pub(crate) const EXTEND_BATCH: usize = 200;

/// Runs scripts on one Redis node: a plain server, a Sentinel-managed
/// master, or the Cluster node that serves the scripts' slot. Its errors say
/// where and how a script failed; the backend above adds which operation it
/// was for ([`Op`]).
pub(crate) trait Runner: Send + Sync + 'static {
    /// Runs one script.
    fn eval(&self, call: &Call<'_>) -> Result<redis::Value>;

    /// Runs many scripts in one pipelined round trip; one result per call.
    fn eval_many(&self, calls: &[Call<'_>]) -> Result<Vec<Result<redis::Value>>>;

    /// Runs one script followed by `WAIT replicas timeout` in the same round
    /// trip; returns the script's reply and how many replicas confirmed.
    fn eval_then_wait(
        &self,
        call: &Call<'_>,
        replicas: usize,
        timeout: Duration,
    ) -> Result<(redis::Value, usize)>;

    /// Runs many scripts, each followed (in its node's round trip) by one
    /// `WAIT replicas timeout`: one result per call, with how many replicas
    /// confirmed it. Renewals use it, so that one confirmation covers a
    /// whole round trip rather than each lease. Here: one call at a time
    /// ([`eval_then_wait`](Self::eval_then_wait)); one node sends them all
    /// with one `WAIT`, a Cluster one `WAIT` per node.
    fn eval_many_then_wait(
        &self,
        calls: &[Call<'_>],
        replicas: usize,
        timeout: Duration,
    ) -> Result<Vec<Result<(redis::Value, usize)>>> {
        Ok(calls
            .iter()
            .map(|call| self.eval_then_wait(call, replicas, timeout))
            .collect())
    }

    /// Visits the keys matching the Redis glob `pattern`: `SCAN` with
    /// `MATCH` and `COUNT` [`SCAN_COUNT`], on the node (on a Cluster, on
    /// every master), until the scan ends or `visit` returns false. A key
    /// may be visited more than once (`SCAN` promises no more, and a
    /// failover may start it again).
    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()>;

    /// Where to listen for release messages.
    fn pubsub_source(&self) -> EndpointSource;

    /// Whether one script may touch keys of different locks (false for a
    /// Cluster, where they live in different slots).
    fn multi_key_scripts(&self) -> bool {
        true
    }

    /// See [`Backend::on_master_switch`].
    fn on_master_switch(&self, _hook: MasterSwitched) {}

    /// See [`Backend::last_master_switch`].
    fn last_master_switch(&self) -> Option<Instant> {
        None
    }

    /// The node, for messages.
    fn describe(&self) -> String;
}

/// Which lock operation an error comes from: the context a backend adds to
/// an error on its way up ("acquiring lock 'x': ..."). Cheap to make, and
/// formatted only when an error happens.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// An acquire attempt of the lock (a read-write lock's side, an
    /// election's candidate: its noun says which).
    Acquire(&'a LockKeys),
    /// An attempt to take permits of the named semaphore.
    AcquirePermits(&'a str),
    /// A release of the named lock.
    Release(&'a LockKeys),
    /// A release owed to a master whose earlier outcome was unknown.
    CleanUp(&'a LockKeys),
    /// The extension of one lease of the named lock.
    Extend(&'a LockKeys),
    /// The extension of this many leases in one round trip.
    Renew(usize),
    /// The extension of this many leases on this many Redlock masters.
    RenewOnMasters(usize, usize),
    /// Reading who holds the named lock.
    Inspect(&'a LockKeys),
    /// Reading who holds this many locks in one round trip.
    InspectMany(usize),
    /// Listing the lock keys.
    Scan,
    /// Checking that a hold of the named lock still owns it.
    ConfirmHold(&'a LockKeys),
    /// Deleting the named lock whoever holds it.
    ForceUnlock(&'a LockKeys),
    /// A fenced write to the named resource.
    FencedWrite(&'a str),
    /// A fenced read of the named resource.
    FencedRead(&'a str),
}

impl fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Acquire(keys) => write!(f, "acquiring {} '{}'", keys.noun(), keys.name()),
            Op::AcquirePermits(name) => write!(f, "acquiring permits of semaphore '{name}'"),
            Op::Release(keys) => write!(f, "releasing {} '{}'", keys.noun(), keys.name()),
            Op::CleanUp(keys) => {
                write!(f, "releasing {} '{}' (clean-up)", keys.noun(), keys.name())
            }
            Op::Extend(keys) => write!(f, "extending {} '{}'", keys.noun(), keys.name()),
            Op::Renew(leases) => write!(f, "renewing {leases} leases"),
            Op::RenewOnMasters(leases, masters) => {
                write!(f, "extending {leases} lease(s) on {masters} masters")
            }
            Op::Inspect(keys) => write!(f, "inspecting {} '{}'", keys.noun(), keys.name()),
            Op::InspectMany(locks) => write!(f, "inspecting {locks} locks"),
            Op::Scan => write!(f, "listing the lock keys"),
            Op::ConfirmHold(keys) => {
                write!(f, "confirming a hold of {} '{}'", keys.noun(), keys.name())
            }
            Op::ForceUnlock(keys) => {
                write!(f, "force-unlocking {} '{}'", keys.noun(), keys.name())
            }
            Op::FencedWrite(resource) => write!(f, "fenced write to '{resource}'"),
            Op::FencedRead(resource) => write!(f, "fenced read of '{resource}'"),
        }
    }
}

/// A renewal the master took but too few replicas confirmed: it does not
/// count (the lease keeps its earlier validity and is renewed again).
fn unconfirmed_renewal(op: Op<'_>, confirmed: usize, wait: WaitForReplicas) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{op}: only {confirmed} of {} replicas confirmed the renewal within {:?}; \
             the lease keeps its earlier validity until a renewal is confirmed",
            wait.replicas, wait.timeout
        ),
    )
}

/// Replicas that must confirm an acquire and every renewal (Redis `WAIT`),
/// and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitForReplicas {
    pub(crate) replicas: usize,
    pub(crate) timeout: Duration,
}

/// The lock operations on one node (whatever [`Runner`] reaches it): each
/// is one script.
pub(crate) struct OneNodeBackend<R: Runner> {
    pub(crate) runner: R,
    pub(crate) wait: Option<WaitForReplicas>,
}

impl<R: Runner> OneNodeBackend<R> {
    pub(crate) fn new(runner: R, wait: Option<WaitForReplicas>) -> Self {
        OneNodeBackend { runner, wait }
    }
}

impl<R: Runner> OneNodeBackend<R> {
    /// Runs one acquire attempt (a lock's or a semaphore's) for the hold
    /// `hold`: with [`WaitForReplicas`], a hold too few replicas confirmed
    /// is given back and the attempt fails.
    fn attempt(
        &self,
        call: &Call<'_>,
        op: Op<'_>,
        keys: &LockKeys,
        hold: &str,
        reentrant: bool,
    ) -> Result<Attempt> {
        let Some(wait) = self.wait else {
            return self
                .runner
                .eval(call)
                .and_then(script_calls::parse_acquire)
                .map_err(|e| e.context(op));
        };
        let (reply, confirmed) = self
            .runner
            .eval_then_wait(call, wait.replicas, wait.timeout)
            .map_err(|e| e.context(op))?;
        let attempt = script_calls::parse_acquire(reply).map_err(|e| e.context(op))?;
        if matches!(attempt, Attempt::Acquired(_)) && confirmed < wait.replicas {
            // Not durable enough to count as held: give it back. If the
            // give-back fails, the attempt's outcome is unknown to the
            // caller, who gives this hold back once Redis answers.
            if let Err(e) = self.release(keys, hold, reentrant) {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "{op}: only {confirmed} of {} replicas confirmed the {}, and giving it back failed: {e}",
                        wait.replicas,
                        keys.noun()
                    ),
                ));
            }
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{op}: only {confirmed} of {} replicas confirmed the {} within {:?}; it was released",
                    wait.replicas,
                    keys.noun(),
                    wait.timeout
                ),
            ));
        }
        Ok(attempt)
    }
}

impl<R: Runner> Backend for OneNodeBackend<R> {
    fn acquire(&self, args: &AcquireArgs<'_>) -> Result<Attempt> {
        let call = script_calls::acquire_call(args);
        let op = Op::Acquire(args.keys);
        self.attempt(&call, op, args.keys, args.hold, args.reentrant)
    }

    fn acquire_permits(&self, args: &PermitArgs<'_>) -> Result<Attempt> {
        let call = script_calls::permit_acquire_call(
            args.keys,
            args.hold,
            args.ttl,
            args.size,
            args.permits,
        );
        let op = Op::AcquirePermits(args.keys.name());
        self.attempt(&call, op, args.keys, args.hold, false)
    }

    fn acquire_read(&self, args: &ReadArgs<'_>) -> Result<Attempt> {
        let call =
            script_calls::rw_read_acquire_call(args.writer, args.readers, args.hold, args.ttl);
        let op = Op::Acquire(args.writer);
        self.attempt(&call, op, args.readers, args.hold, false)
    }

    fn eval_on_one_node(&self, call: &Call<'_>, _what: &str) -> Result<redis::Value> {
        self.runner.eval(call)
    }

    fn eval_on_one_node_confirmed(
        &self,
        call: &Call<'_>,
        _what: &str,
    ) -> Result<(redis::Value, bool)> {
        let Some(wait) = self.wait else {
            return self.runner.eval(call).map(|value| (value, true));
        };
        let (reply, confirmed) = self
            .runner
            .eval_then_wait(call, wait.replicas, wait.timeout)?;
        Ok((reply, confirmed >= wait.replicas))
    }

    fn inspect_permits(&self, keys: &LockKeys, limit: usize) -> Result<SemaphoreInfo> {
        self.runner
            .eval(&script_calls::permit_inspect_call(keys, limit))
            .and_then(|value| script_calls::parse_permit_inspect(keys.name(), value))
            .map_err(|e| e.context(Op::Inspect(keys)))
    }

    fn release(&self, keys: &LockKeys, token: &str, reentrant: bool) -> Result<Released> {
        let call = script_calls::release_call(keys, token, reentrant, true);
        let released = self
            .runner
            .eval(&call)
            .and_then(script_calls::parse_release)
            .map_err(|e| e.context(Op::Release(keys)))?;
        if keys.is_election() && released == Released::Free {
            // A leader resigned: withdraw its announcement and tell the
            // observers (best effort: they otherwise look again within
            // their re-check period).
            let value_key = keys.election_value();
            let _ = self
                .runner
                .eval(&script_calls::election_resign_call(keys, &value_key, token));
        }
        Ok(released)
    }

    /// With [`WaitForReplicas`], a renewal counts only once the replicas
    /// confirmed it, like an acquire: one the master took but too few
    /// replicas confirmed is an error for that lease (a `Timeout`), so the
    /// lease keeps its earlier validity and the renewal is tried again. A
    /// failover may promote a replica that missed the renewals: its copy
    /// expires when the last confirmed validity does, and no lease here
    /// outlives that.
    fn extend(&self, items: &[ExtendItem<'_>]) -> Result<Vec<Result<bool>>> {
        let op = match items {
            [one] => Op::Extend(one.keys),
            _ => Op::Renew(items.len()),
        };
        // Many leases per script, several scripts per round trip; one
        // script per lease where a script may not span locks (a Cluster).
        let per_script = if self.runner.multi_key_scripts() {
            EXTEND_BATCH
        } else {
            1
        };
        let chunks = script_calls::extend_batches(items, per_script);
        let calls: Vec<Call<'_>> = chunks
            .iter()
            .map(|chunk| match chunk {
                [one] => script_calls::extend_call(one),
                many => script_calls::extend_batch_call(many),
            })
            .collect();
        let replies: Vec<Result<(redis::Value, usize)>> = match (self.wait, calls.as_slice()) {
            (None, [one]) => vec![Ok((self.runner.eval(one).map_err(|e| e.context(op))?, 0))],
            (None, _) => self
                .runner
                .eval_many(&calls)
                .map_err(|e| e.context(op))?
                .into_iter()
                .map(|r| r.map(|value| (value, 0)))
                .collect(),
            (Some(wait), [one]) => vec![Ok(self
                .runner
                .eval_then_wait(one, wait.replicas, wait.timeout)
                .map_err(|e| e.context(op))?)],
            (Some(wait), _) => self
                .runner
                .eval_many_then_wait(&calls, wait.replicas, wait.timeout)
                .map_err(|e| e.context(op))?,
        };
        let mut outcomes = Vec::with_capacity(items.len());
        for (chunk, reply) in chunks.iter().zip(replies) {
            let parsed = reply.and_then(|(value, confirmed)| {
                let flags = match chunk {
                    [_] => vec![matches!(value, redis::Value::Int(1))],
                    many => script_calls::parse_extend_batch(many.len(), value)?,
                };
                Ok((flags, confirmed))
            });
            match parsed {
                Ok((flags, confirmed)) => {
                    outcomes.extend(flags.into_iter().map(|extended| match self.wait {
                        // Not ours any more: the master's word is enough.
                        Some(wait) if extended && confirmed < wait.replicas => {
                            Err(unconfirmed_renewal(op, confirmed, wait))
                        }
                        _ => Ok(extended),
                    }));
                }
                Err(e) => {
                    let e = e.context(op);
                    outcomes.extend(chunk.iter().map(|_| Err(e.clone())));
                }
            }
        }
        Ok(outcomes)
    }

    fn announce_free(&self, keys: &LockKeys, token: &str) -> Result<()> {
        self.runner
            .eval(&script_calls::announce_free_call(keys, token))
            .map(|_| ())
            .map_err(|e| e.context(Op::Release(keys)))
    }

    fn inspect(&self, keys: &LockKeys, queue_limit: usize) -> Result<Option<LockInfo>> {
        self.runner
            .eval(&script_calls::inspect_call(keys, queue_limit))
            .and_then(|value| script_calls::parse_inspect(keys.name(), value))
            .map_err(|e| e.context(Op::Inspect(keys)))
    }

    fn inspect_many(
        &self,
        keys: &[LockKeys],
        queue_limit: usize,
    ) -> Result<Vec<Result<Option<LockInfo>>>> {
        let calls: Vec<Call<'_>> = keys
            .iter()
            .map(|k| script_calls::inspect_call(k, queue_limit))
            .collect();
        let replies = self
            .runner
            .eval_many(&calls)
            .map_err(|e| e.context(Op::InspectMany(keys.len())))?;
        Ok(keys
            .iter()
            .zip(replies)
            .map(|(k, reply)| {
                reply
                    .and_then(|value| script_calls::parse_inspect(k.name(), value))
                    .map_err(|e| e.context(Op::Inspect(k)))
            })
            .collect())
    }

    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        self.runner
            .scan(pattern, visit)
            .map_err(|e| e.context(Op::Scan))
    }

    fn hold_exists(&self, keys: &LockKeys, hold: &str, reentrant: bool) -> Result<bool> {
        let value = self
            .runner
            .eval(&script_calls::hold_exists_call(keys, hold, reentrant))
            .map_err(|e| e.context(Op::ConfirmHold(keys)))?;
        Ok(matches!(value, redis::Value::Int(1)))
    }

    fn force_unlock(&self, keys: &LockKeys, holder: &str) -> Result<bool> {
        let value = self
            .runner
            .eval(&script_calls::force_unlock_call(keys, holder))
            .map_err(|e| e.context(Op::ForceUnlock(keys)))?;
        Ok(matches!(value, redis::Value::Int(n) if n > 0))
    }

    fn fenced_write(&self, write: &FencedWriteArgs<'_>) -> Result<FencedWrite> {
        self.runner
            .eval(&script_calls::fenced_write_call(write))
            .and_then(script_calls::parse_fenced_write)
            .map_err(|e| e.context(Op::FencedWrite(write.resource)))
    }

    fn fenced_read(&self, key: &[u8], resource: &str) -> Result<Option<(u64, Vec<u8>)>> {
        self.runner
            .eval(&script_calls::fenced_read_call(key))
            .and_then(script_calls::parse_fenced_read)
            .map_err(|e| e.context(Op::FencedRead(resource)))
    }

    fn pubsub_sources(&self) -> Vec<EndpointSource> {
        vec![self.runner.pubsub_source()]
    }

    fn queues_waiters(&self) -> bool {
        true
    }

    fn leave_queue(&self, keys: &LockKeys, waiter: &str) -> Result<()> {
        self.runner
            .eval(&script_calls::leave_queue_call(keys, waiter))
            .map(|_| ())
            .map_err(|e| e.context(Op::Acquire(keys)))
    }

    fn undoes_failed_attempts(&self) -> bool {
        // An acquire too few replicas confirmed is given back at once.
        self.wait.is_some()
    }

    fn on_master_switch(&self, hook: MasterSwitched) {
        self.runner.on_master_switch(hook);
    }

    fn last_master_switch(&self) -> Option<Instant> {
        self.runner.last_master_switch()
    }

    fn describe(&self) -> String {
        self.runner.describe()
    }
}

#[cfg(test)]
mod tests {
    //! The replica confirmation of renewals, against a runner that answers
    //! from memory: what each lease's outcome is, and how many `WAIT`s a
    //! round trip costs.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Extends every lease whose token starts with "ours"; `WAIT` reports
    /// `confirmed` replicas. Counts the round trips that end with a `WAIT`.
    struct Stub {
        confirmed: usize,
        multi_key: bool,
        waits: AtomicUsize,
    }

    fn extended(call: &Call<'_>) -> redis::Value {
        let ours = |arg: &Cow<'_, [u8]>| i64::from(arg.starts_with(b"ours"));
        let leases = call.keys.len();
        if call.script.name == crate::scripts::extend_batch().name {
            redis::Value::Array(
                call.args[2..2 + leases]
                    .iter()
                    .map(|a| redis::Value::Int(ours(a)))
                    .collect(),
            )
        } else {
            redis::Value::Int(ours(&call.args[0]))
        }
    }

    impl Runner for Stub {
        fn eval(&self, call: &Call<'_>) -> Result<redis::Value> {
            Ok(extended(call))
        }
        fn eval_many(&self, calls: &[Call<'_>]) -> Result<Vec<Result<redis::Value>>> {
            Ok(calls.iter().map(|c| Ok(extended(c))).collect())
        }
        fn eval_then_wait(
            &self,
            call: &Call<'_>,
            _replicas: usize,
            _timeout: Duration,
        ) -> Result<(redis::Value, usize)> {
            self.waits.fetch_add(1, Ordering::SeqCst);
            Ok((extended(call), self.confirmed))
        }
        fn eval_many_then_wait(
            &self,
            calls: &[Call<'_>],
            _replicas: usize,
            _timeout: Duration,
        ) -> Result<Vec<Result<(redis::Value, usize)>>> {
            self.waits.fetch_add(1, Ordering::SeqCst);
            Ok(calls
                .iter()
                .map(|c| Ok((extended(c), self.confirmed)))
                .collect())
        }
        fn scan(&self, _pattern: &[u8], _visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
            Ok(())
        }
        fn pubsub_source(&self) -> EndpointSource {
            Arc::new(|| Err(Error::new(ErrorKind::Connection, "no listener here")))
        }
        fn multi_key_scripts(&self) -> bool {
            self.multi_key
        }
        fn describe(&self) -> String {
            "stub".into()
        }
    }

    fn backend(confirmed: usize, multi_key: bool) -> OneNodeBackend<Stub> {
        OneNodeBackend::new(
            Stub {
                confirmed,
                multi_key,
                waits: AtomicUsize::new(0),
            },
            Some(WaitForReplicas {
                replicas: 2,
                timeout: Duration::from_millis(50),
            }),
        )
    }

    /// What `extend` says of leases whose tokens are `tokens`: true
    /// (extended), false (not ours), or the error kind.
    fn outcomes(backend: &OneNodeBackend<Stub>, tokens: &[&str]) -> Vec<String> {
        let keys: Vec<LockKeys> = (0..tokens.len())
            .map(|i| LockKeys::new("test", &format!("lock-{i}")).unwrap())
            .collect();
        let items: Vec<ExtendItem<'_>> = keys
            .iter()
            .zip(tokens)
            .map(|(keys, token)| ExtendItem {
                keys,
                token,
                reentrant: false,
                ttl: Duration::from_secs(10),
            })
            .collect();
        backend
            .extend(&items)
            .unwrap()
            .into_iter()
            .map(|r| match r {
                Ok(flag) => flag.to_string(),
                Err(e) => format!("{:?}", e.kind()),
            })
            .collect()
    }

    #[test]
    fn a_renewal_counts_only_once_the_replicas_confirmed_it() {
        for multi_key in [true, false] {
            let confirmed = backend(2, multi_key);
            assert_eq!(
                outcomes(&confirmed, &["ours-1", "theirs", "ours-2"]),
                ["true", "false", "true"]
            );
            // Too few replicas: the extended leases are errors (retried,
            // old validity kept); one not ours is lost all the same.
            let unconfirmed = backend(1, multi_key);
            assert_eq!(
                outcomes(&unconfirmed, &["ours-1", "theirs", "ours-2"]),
                ["Timeout", "false", "Timeout"]
            );
            assert_eq!(outcomes(&unconfirmed, &["ours-1"]), ["Timeout"]);
        }
    }

    #[test]
    fn one_wait_per_round_trip_not_per_lease() {
        let backend = backend(2, true);
        let tokens: Vec<String> = (0..EXTEND_BATCH * 2 + 1)
            .map(|i| format!("ours-{i}"))
            .collect();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        assert!(outcomes(&backend, &tokens).iter().all(|o| o == "true"));
        assert_eq!(backend.runner.waits.load(Ordering::SeqCst), 1);
    }
}
