//! Redlock: one lock over N independent masters.
//!
//! Each operation runs the same script as on one node, on every master at
//! once. Masters with a pooled connection get their request written before
//! any reply is read; masters that need a new connection are connected on
//! threads of their own at the same time, so a master that does not answer
//! its connect costs at most one connect timeout, in parallel with the
//! others, never one after another. A master that errors or times out is a
//! vote against, never an abort.
//!
//! A master that failed to answer (refused, stopped, blackholed, timed out)
//! is remembered as down: while a quorum of the others is healthy the next
//! operations skip it (a fast "no") instead of paying its timeout again,
//! and a recovery thread re-probes it with back-off until it answers. When
//! the outcome of a command on a master is unknown (it may yet run there),
//! the recovery thread also takes back our token on that master once it
//! answers again, so a stray acquire does not sit there for a whole ttl.
//!
//! The lock counts as held on a quorum (N/2+1) only, and only within
//! `ttl - elapsed - drift` of sending the acquire. Every operation that
//! hears from fewer than a quorum fails with `NoQuorum` rather than guess.
//!
//! A master that restarted lost the locks it had granted (without
//! persistence, or with a late `fsync`) and would grant them again: two
//! such restarts, one after the other (or the whole deployment at once),
//! make a second quorum for a lock that is still held. The Redlock
//! paper's answer is a delayed restart (keep a restarted master out for
//! the largest ttl); the client does it here so that operators need not:
//! the grant of a master whose current run is younger than the restart
//! delay (by default the largest ttl this client uses) never counts toward
//! a quorum ([`Master::uptime`]). The client cannot tell a deployment that
//! just started from one that restarted and lost its locks, so the rule
//! holds for both.
//!
//! The masters are reached through the [`MasterNode`] trait (a
//! [`SingleNode`] each in production) and the time is read from a
//! [`Clock`] (the monotonic clock in production), so the quorum, validity
//! and health rules are unit-tested against in-memory masters and a clock
//! moved by hand.

mod clock;
mod health;
#[cfg(test)]
mod memory;
mod node;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::clock::{Clock, Monotonic};
use self::health::{Cleanup, Master};
use self::node::MasterNode;
use super::script_calls::{self, acquire_call, parse_acquire, parse_release, release_call};
use super::single::SingleNode;
use super::{
    AcquireArgs, Attempt, Backend, Call, EndpointSource, ExtendItem, FencedWriteArgs, Op, Released,
    EXTEND_BATCH,
};
use crate::error::{Error, ErrorKind, Result};
use crate::info::{FencedWrite, LockInfo, MasterState};
use crate::keys::LockKeys;
use crate::validity::drift;
use crate::wait::jitter;

/// How long a release (by token) owed to a master whose outcome was unknown
/// keeps being retried. A release does not know the lease's ttl; past this
/// the key has expired in all but very long leases, and the next holder's
/// acquire is not disturbed by it either way (the release checks our token).
const RELEASE_PATIENCE: Duration = Duration::from_secs(60);

/// Redlock over masters of type `N` (a [`SingleNode`] each in production),
/// reading the time from `C` (the monotonic clock in production).
pub(crate) struct Redlock<N = SingleNode, C = Monotonic> {
    masters: Vec<Arc<Master<N, C>>>,
    quorum: usize,
    command_timeout: Duration,
    clock: C,
    /// The largest ttl asked for so far, in milliseconds: by default, how
    /// long a restarted master stays out of the quorum.
    largest_ttl: AtomicU64,
    /// How long a restarted master stays out, when set by the user.
    restart_delay: Option<Duration>,
}

/// The replies of one master: all its calls' results, or why it failed.
type MasterReplies = Result<Vec<Result<redis::Value>>>;

/// What one master said to one operation.
struct Answer {
    replies: MasterReplies,
    /// False when the master was skipped (remembered down): nothing was
    /// sent, so nothing can have happened there.
    asked: bool,
}

impl Answer {
    /// The first reply, or why there is none.
    fn first(self) -> Result<redis::Value> {
        self.replies.and_then(|mut values| {
            if values.is_empty() {
                return Err(Error::new(ErrorKind::Server, "no reply"));
            }
            values.swap_remove(0)
        })
    }

    /// Whether the request may have run without our hearing of it.
    fn outcome_unknown(&self) -> bool {
        self.asked && matches!(&self.replies, Err(e) if is_transport(e))
    }
}

/// One reply per master, and whether the master was asked.
struct FirstReply {
    reply: Result<redis::Value>,
    asked: bool,
}

impl FirstReply {
    fn outcome_unknown(&self) -> bool {
        self.asked && matches!(&self.reply, Err(e) if is_transport(e))
    }
}

/// Errors that say nothing about what the server did (timeouts, dropped or
/// refused connections), as opposed to a reply from the server.
fn is_transport(err: &Error) -> bool {
    matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection)
}

/// What is left of an acquire's validity at `now`: `ttl - elapsed -
/// drift`, counted from `sent`; `None` once nothing is left.
fn validity_left(ttl: Duration, sent: Instant, now: Instant) -> Option<Duration> {
    ttl.checked_sub(now.saturating_duration_since(sent))
        .and_then(|left| left.checked_sub(drift(ttl)))
        .filter(|left| !left.is_zero())
}

impl Redlock {
    /// A Redlock over `masters`: an odd number, at least 3, all different
    /// servers (two URLs of one server would let it vote twice).
    pub(crate) fn new(masters: Vec<SingleNode>, command_timeout: Duration) -> Result<Self> {
        Self::with_clock(masters, command_timeout, Monotonic)
    }
}

impl<N: MasterNode, C: Clock> Redlock<N, C> {
    /// Like [`Redlock::new`], over any kind of master and reading the time
    /// from `clock`.
    pub(crate) fn with_clock(masters: Vec<N>, command_timeout: Duration, clock: C) -> Result<Self> {
        let n = masters.len();
        if n < 3 || n % 2 == 0 {
            return Err(Error::invalid(format!(
                "Redlock needs an odd number of independent masters, at least 3 (3, 5, 7, ...); \
                 got {n} (with an even number the quorum N/2+1 tolerates no more failures \
                 than N-1)"
            )));
        }
        let identities: Vec<String> = masters.iter().map(N::server_identity).collect();
        for (i, identity) in identities.iter().enumerate() {
            if let Some(j) = identities[..i].iter().position(|other| other == identity) {
                return Err(Error::invalid(format!(
                    "Redlock masters {} and {} are the same server ({identity}); every master \
                     must be a different server, or one server would vote more than once \
                     (two databases of one server count as the same server)",
                    j + 1,
                    i + 1
                )));
            }
        }
        Ok(Redlock {
            quorum: n / 2 + 1,
            masters: masters
                .into_iter()
                .map(|node| Master::new(node, clock.clone()))
                .collect(),
            command_timeout,
            clock,
            largest_ttl: AtomicU64::new(0),
            restart_delay: None,
        })
    }

    /// Sets how long a (re)started master stays out of every quorum;
    /// `None` (the default) for the largest ttl in use.
    pub(crate) fn restart_delay(mut self, delay: Option<Duration>) -> Self {
        self.restart_delay = delay;
        self
    }

    /// Records that `ttl` is in use; the largest ttl in use so far.
    fn note_ttl(&self, ttl: Duration) -> Duration {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let before = self.largest_ttl.fetch_max(ms, Ordering::Relaxed);
        Duration::from_millis(before.max(ms))
    }

    /// Among masters `answered`, those whose grant does not count toward a
    /// quorum: their current run is younger than `delay`, so locks granted
    /// by their previous run (and lost with it) may still be held. Each
    /// master left out, with how long until it counts again and an error
    /// saying why. A master that does not say how long it has run (`INFO`
    /// refused, or not answered) does not count either: it may have
    /// restarted a moment ago.
    fn restarted(&self, answered: &[usize], delay: Duration) -> Vec<(usize, Duration, Error)> {
        answered
            .iter()
            .filter_map(|&i| {
                let master = self.masters[i].node.describe();
                let (left, why) = match self.masters[i].uptime() {
                    Some(up) if up >= delay => return None,
                    Some(up) => (
                        delay - up,
                        format!(
                            "{master} (re)started {up:.1?} ago and may have lost locks it \
                             granted before; it counts toward a quorum once {delay:?} (the \
                             restart delay) have passed since its start"
                        ),
                    ),
                    // Fails closed: a master that may have restarted a
                    // moment ago is treated as if it had. Asked again soon:
                    // the reading may have failed only this once.
                    None => (
                        delay.min(Duration::from_secs(1)),
                        format!(
                            "{master} did not say how long it has run (INFO server refused \
                             or not answered), so it may have restarted and lost locks; it \
                             counts toward a quorum once it says, or with a zero restart delay"
                        ),
                    ),
                };
                Some((i, left, Error::new(ErrorKind::Connection, why)))
            })
            .collect()
    }

    /// Runs `calls` on the masters numbered in `which`, all at once; one
    /// answer per master of `which`, in that order. Masters remembered down
    /// are skipped, unless that would leave too few for a quorum (then
    /// every master is asked, paying at most one timeout).
    fn run_on(&self, calls: &[Call<'_>], which: &[usize]) -> Vec<Answer> {
        let up: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&i| !self.masters[i].is_down())
            .collect();
        let partial = which.len() < self.masters.len();
        let asked: Vec<usize> = if partial || up.len() >= self.quorum {
            up
        } else {
            which.to_vec()
        };
        let (pooled, unconnected): (Vec<usize>, Vec<usize>) = asked
            .iter()
            .copied()
            .partition(|&i| self.masters[i].node.has_idle());
        let mut replies: Vec<Option<MasterReplies>> = vec![None; self.masters.len()];
        // One signal mask for the whole round trip (the nodes' own masks
        // nest in it for free); the connecting threads start with it.
        let _masked = crate::signals::mask();
        let on_pooled = |replies: &mut Vec<Option<MasterReplies>>| {
            let deadline = self.clock.now() + self.command_timeout;
            let in_flight: Vec<_> = pooled
                .iter()
                .map(|&i| (i, self.masters[i].node.send(calls)))
                .collect();
            for (i, sent) in in_flight {
                replies[i] = Some(self.masters[i].node.receive(sent, Some(deadline)));
            }
        };
        if unconnected.is_empty() {
            on_pooled(&mut replies);
        } else {
            // A master that gets no thread is connected on this one, after
            // the pooled ones.
            let ((), connected) = crate::thread::in_parallel(
                "latchkey-redlock-connect",
                unconnected.iter().map(|&i| {
                    let node = &self.masters[i].node;
                    move || {
                        let _masked = crate::signals::mask();
                        node.receive(node.send(calls), None)
                    }
                }),
                || on_pooled(&mut replies),
            );
            for (&i, reply) in unconnected.iter().zip(connected) {
                replies[i] = Some(reply.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Server,
                        "the connecting thread panicked",
                    ))
                }));
            }
        }
        which
            .iter()
            .map(|&i| {
                let master = &self.masters[i];
                match replies[i].take() {
                    Some(replies) => {
                        match &replies {
                            Ok(_) => master.answered(),
                            Err(e) if is_transport(e) => master.failed(e.clone()),
                            Err(_) => {}
                        }
                        Answer {
                            replies,
                            asked: true,
                        }
                    }
                    None => Answer {
                        replies: Err(master.skipped()),
                        asked: false,
                    },
                }
            })
            .collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.masters.len()).collect()
    }

    /// Runs `calls` on every master.
    fn on_all(&self, calls: &[Call<'_>]) -> Vec<Answer> {
        self.run_on(calls, &self.all())
    }

    /// The first reply of each master.
    fn first_replies(&self, call: Call<'_>) -> Vec<FirstReply> {
        self.on_all(std::slice::from_ref(&call))
            .into_iter()
            .map(|answer| FirstReply {
                asked: answer.asked,
                reply: answer.first(),
            })
            .collect()
    }

    /// The error of operation `op` when too few masters answered; the
    /// masters' own errors name no operation, the first is quoted.
    fn no_quorum(&self, op: Op<'_>, answered: usize, errors: &[Error]) -> Error {
        let first = errors
            .first()
            .map(|e| format!("; first failure: {e}"))
            .unwrap_or_default();
        Error::new(
            ErrorKind::NoQuorum,
            format!(
                "{op}: no quorum: {answered} of {} masters answered, {} needed{first}",
                self.masters.len(),
                self.quorum
            ),
        )
    }

    /// Hands the release of hold `hold` on master `i` to its recovery
    /// thread, which sends it once the master answers again: our acquire
    /// may still run there, so it keeps trying until `until` (when the key
    /// would have expired anyway).
    fn release_later(&self, i: usize, args: &AcquireArgs<'_>, until: Instant) {
        self.masters[i].owe(Cleanup::after_acquire(
            args.keys.clone(),
            args.hold.to_string(),
            args.reentrant,
            until,
        ));
    }

    /// After a failed attempt: give back what we took, at once on the
    /// masters that granted it, in the background where the outcome is
    /// unknown.
    fn undo(&self, args: &AcquireArgs<'_>, granted: &[usize]) {
        if granted.is_empty() {
            return;
        }
        let call = release_call(args.keys, args.hold, args.reentrant, false);
        let answers = self.run_on(std::slice::from_ref(&call), granted);
        for (&i, answer) in granted.iter().zip(answers) {
            if answer.outcome_unknown() {
                self.masters[i].owe(Cleanup::after_release(
                    args.keys.clone(),
                    args.hold.to_string(),
                    args.reentrant,
                    self.clock.now() + RELEASE_PATIENCE,
                ));
            }
        }
    }

    /// Raises the fencing counter to `token` on the masters that issued a
    /// lower one, so that a quorum has a counter at least `token`. For a
    /// reentrant hold also the tenure's token there: one tenure has one
    /// token on every master, so a nested hold answered by any quorum gets
    /// at least the token its tenure's first hold got.
    fn write_back_fence(
        &self,
        args: &AcquireArgs<'_>,
        token: u64,
        issued: &[(usize, u64)],
    ) -> bool {
        let keys = args.keys;
        let already = issued.iter().filter(|(_, f)| *f == token).count();
        let behind: Vec<usize> = issued
            .iter()
            .filter(|(_, f)| *f < token)
            .map(|(i, _)| *i)
            .collect();
        if already >= self.quorum || behind.is_empty() {
            return already >= self.quorum;
        }
        let reentrant_hold = args.reentrant.then_some((args.owner, args.hold));
        let call = script_calls::raise_fence_call(keys, token, reentrant_hold);
        let raised = self
            .run_on(std::slice::from_ref(&call), &behind)
            .into_iter()
            .filter(|a| matches!(&a.replies, Ok(v) if v.iter().all(|x| x.is_ok())))
            .count();
        already + raised >= self.quorum
    }
}

impl<N: MasterNode, C: Clock> Backend for Redlock<N, C> {
    fn acquire(&self, args: &AcquireArgs<'_>) -> Result<Attempt> {
        let (keys, ttl) = (args.keys, args.ttl);
        let op = Op::Acquire(keys);
        let largest_ttl = self.note_ttl(ttl);
        let sent = self.clock.now();
        let replies = self.first_replies(acquire_call(args));
        let mut issued = Vec::new();
        let mut held_for = Vec::new();
        let mut unknown = Vec::new();
        let mut errors = Vec::new();
        let mut answered = Vec::new();
        for (i, answer) in replies.into_iter().enumerate() {
            if answer.outcome_unknown() {
                unknown.push(i);
            }
            if answer.reply.is_ok() {
                answered.push(i);
            }
            match answer.reply.and_then(parse_acquire) {
                Ok(Attempt::Acquired(fence)) => issued.push((i, fence)),
                Ok(Attempt::Held(left)) => held_for.push(left),
                // One master's script never withholds.
                Ok(Attempt::Withheld(_, e)) | Err(e) => errors.push(e),
            }
        }
        // A grant from a master that (re)started too recently does not
        // count: a lock it granted before may still be held. (It is given
        // back with the others if the attempt fails.) The runs are read
        // whenever a master granted, so that a later change of run id is
        // seen.
        let delay = self.restart_delay.unwrap_or(largest_ttl);
        let restarted = if issued.is_empty() || delay.is_zero() {
            Vec::new()
        } else {
            self.restarted(&answered, delay)
        };
        let counted = issued
            .iter()
            .filter(|(i, _)| !restarted.iter().any(|(r, _, _)| r == i))
            .count();
        let counts_again_in = restarted.iter().map(|(_, left, _)| *left).min();
        errors.extend(restarted.iter().map(|(_, _, e)| e.clone()));
        // Validity is counted after every round trip of the attempt (the
        // fence write-back included): a guard is never handed out with its
        // time already spent.
        let still_valid = || validity_left(ttl, sent, self.clock.now()).is_some();
        if counted >= self.quorum && still_valid() {
            let fence = issued.iter().map(|(_, f)| *f).max().unwrap_or(0);
            if self.write_back_fence(args, fence, &issued) && still_valid() {
                return Ok(Attempt::Acquired(fence));
            }
        }
        let granted: Vec<usize> = issued.iter().map(|(i, _)| *i).collect();
        self.undo(args, &granted);
        // The acquire may still run on these masters (a stopped server
        // resumes, a slow one catches up): take it back there once they
        // answer, at the latest until the key would have expired. Every hold
        // has its own token, so this never touches another hold (reentrant
        // ones included).
        for &i in &unknown {
            self.release_later(i, args, sent + ttl);
        }
        if counted + held_for.len() < self.quorum {
            if let Some(left) = counts_again_in {
                if counted + held_for.len() + restarted.len() >= self.quorum {
                    // A lock the restarted masters lost may still be held
                    // (its holder cannot be seen): not granted until they
                    // count. Held, if a master says so; else withheld, and
                    // the caller is told why.
                    let left = left.max(Duration::from_millis(1));
                    if !held_for.is_empty() {
                        return Ok(Attempt::Held(left));
                    }
                    let young: Vec<&str> = restarted.iter().map(|(_, _, e)| e.message()).collect();
                    return Ok(Attempt::Withheld(
                        left,
                        Error::new(
                            ErrorKind::NoQuorum,
                            format!(
                                "{op}: not granted: no master says the lock is held, but only \
                                 {counted} of {} masters count toward a quorum of {}; {}. \
                                 Masters younger than the restart delay may have lost locks \
                                 that are still held (see redlock_restart_delay)",
                                self.masters.len(),
                                self.quorum,
                                young.join("; ")
                            ),
                        )
                        // Not now, rather than not at all: waited out.
                        .answered_busy(),
                    ));
                }
            }
            // Too few masters answered for any outcome to be certain.
            return Err(self.no_quorum(op, counted + held_for.len(), &errors));
        }
        if !issued.is_empty() && held_for.len() < self.quorum {
            // A split vote: contenders each took some masters, none holds a
            // quorum. Retry after a short random pause, so they do not split
            // again in lockstep. (When others hold a quorum, wait for their
            // release message or lease end instead.)
            return Ok(Attempt::Held(
                Duration::from_millis(1) + jitter(Duration::from_millis(20)),
            ));
        }
        let wait = held_for
            .iter()
            .copied()
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or_default();
        Ok(Attempt::Held(wait))
    }

    fn release(&self, keys: &LockKeys, token: &str, reentrant: bool) -> Result<Released> {
        let op = Op::Release(keys);
        let mut freed = 0;
        let mut still_held = 0;
        let mut not_ours = 0;
        let mut errors = Vec::new();
        let replies = self.first_replies(release_call(keys, token, reentrant, false));
        for (i, answer) in replies.into_iter().enumerate() {
            // The release may be stuck on a master that stopped or slowed
            // down, or was not sent to a master remembered down (which may
            // still run our acquire when it resumes): make sure of it there
            // once it answers, by the hold's own token, so a late run
            // touches no other hold.
            if answer.outcome_unknown() || !answer.asked {
                self.masters[i].owe(Cleanup::after_release(
                    keys.clone(),
                    token.to_string(),
                    reentrant,
                    self.clock.now() + RELEASE_PATIENCE,
                ));
            }
            match answer.reply.and_then(parse_release) {
                Ok(Released::Free) => freed += 1,
                Ok(Released::StillHeld) => still_held += 1,
                Ok(Released::NotOwner) => not_ours += 1,
                Err(e) => errors.push(e),
            }
        }
        let ours = freed + still_held;
        if ours >= self.quorum {
            return Ok(if still_held > freed {
                Released::StillHeld
            } else {
                Released::Free
            });
        }
        if ours + errors.len() >= self.quorum {
            // The masters we did not hear from might have made it a quorum:
            // "not the owner" would be a guess.
            let first = errors
                .first()
                .map(|e| format!("; first failure: {e}"))
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::NoQuorum,
                format!(
                    "{op}: no quorum: {ours} of {} masters had the hold, {not_ours} no longer \
                     had it, {} did not answer; {} needed{first}",
                    self.masters.len(),
                    errors.len(),
                    self.quorum
                ),
            ));
        }
        Ok(Released::NotOwner)
    }

    fn extend(&self, items: &[ExtendItem<'_>]) -> Result<Vec<Result<bool>>> {
        let op = Op::RenewOnMasters(items.len(), self.masters.len());
        for item in items {
            self.note_ttl(item.ttl);
        }
        // Per master: one batch script per chunk of leases, all chunks in
        // one round trip; then each lease's answer from every master.
        let chunks = script_calls::extend_batches(items, EXTEND_BATCH);
        let calls: Vec<Call<'_>> = chunks
            .iter()
            .map(|c| script_calls::extend_batch_call(c))
            .collect();
        let per_master: Vec<Vec<Result<bool>>> = self
            .on_all(&calls)
            .into_iter()
            .map(|answer| match answer.replies {
                Ok(replies) => chunks
                    .iter()
                    .zip(replies)
                    .flat_map(|(chunk, reply)| {
                        match reply.and_then(|v| script_calls::parse_extend_batch(chunk.len(), v)) {
                            Ok(flags) => flags.into_iter().map(Ok).collect::<Vec<_>>(),
                            Err(e) => chunk.iter().map(|_| Err(e.clone())).collect(),
                        }
                    })
                    .collect(),
                Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
            })
            .collect();
        let outcomes = (0..items.len())
            .map(|i| {
                let mut confirmed = 0;
                let mut errors = Vec::new();
                for answers in &per_master {
                    match answers.get(i) {
                        Some(Ok(true)) => confirmed += 1,
                        Some(Ok(false)) => {}
                        Some(Err(e)) => errors.push(e.clone()),
                        None => errors.push(Error::new(
                            ErrorKind::Server,
                            "a master sent too few replies",
                        )),
                    }
                }
                if confirmed >= self.quorum {
                    Ok(true)
                } else if confirmed + errors.len() >= self.quorum {
                    // The silent masters might still confirm: not lost yet.
                    Err(self.no_quorum(op, self.masters.len() - errors.len(), &errors))
                } else {
                    Ok(false)
                }
            })
            .collect();
        Ok(outcomes)
    }

    fn announce_free(&self, keys: &LockKeys, token: &str) -> Result<()> {
        // Every master that lacks the key tells its listeners; a waiter
        // hears any one of them. Best effort: no quorum is needed to wake.
        let replies = self.first_replies(script_calls::announce_free_call(keys, token));
        match replies.into_iter().find_map(|answer| answer.reply.err()) {
            Some(e) => Err(e.context(Op::Release(keys))),
            None => Ok(()),
        }
    }

    /// The queue is always empty: Redlock's waiters do not queue (its
    /// masters share no queue), so no master is asked for one.
    /// Scans every master in turn: a lock a quorum holds is on at least
    /// one master that answers as long as no more than N - quorum fail, so
    /// the failures of a minority are skipped; more fail with `NoQuorum`.
    /// Keys any master has are visited (inspect then says which a quorum
    /// holds).
    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        let mut errors = Vec::new();
        for master in &self.masters {
            let mut more = true;
            let scanned = master.node.scan(pattern, &mut |key| {
                more = visit(key);
                more
            });
            if let Err(e) = scanned {
                errors.push(e.context(Op::Scan));
                let answered = self.masters.len() - errors.len();
                if answered < self.quorum {
                    return Err(self.no_quorum(Op::Scan, answered, &errors));
                }
            }
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn inspect(&self, keys: &LockKeys, _queue_limit: usize) -> Result<Option<LockInfo>> {
        let op = Op::Inspect(keys);
        let mut states = Vec::new();
        let mut owners: Vec<LockInfo> = Vec::new();
        let mut errors = Vec::new();
        for (master, answer) in self
            .masters
            .iter()
            .zip(self.first_replies(script_calls::inspect_call(keys, 0)))
        {
            let parsed = answer
                .reply
                .and_then(|v| script_calls::parse_inspect(keys.name(), v));
            let held = parsed.as_ref().ok().and_then(Option::as_ref);
            states.push(MasterState {
                server: master.node.describe(),
                holder: held.map(|i| i.owner_token.clone()),
                fencing_token: held.map(|i| i.fencing_token),
                ttl: held.and_then(|i| i.ttl),
                error: parsed.as_ref().err().map(|e| e.to_string()),
            });
            match parsed {
                Ok(Some(info)) => owners.push(info),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        let silent = errors.len();
        if self.masters.len() - silent < self.quorum {
            return Err(self.no_quorum(op, self.masters.len() - silent, &errors));
        }
        let votes = |token: &str| owners.iter().filter(|o| o.owner_token == token).count();
        let quorum_owner = owners.iter().find(|o| votes(&o.owner_token) >= self.quorum);
        let Some(owner) = quorum_owner else {
            // Free only if no owner could reach a quorum with the votes of
            // the masters we did not hear from.
            if owners
                .iter()
                .any(|o| votes(&o.owner_token) + silent >= self.quorum)
            {
                return Err(self.no_quorum(op, self.masters.len() - silent, &errors));
            }
            return Ok(None);
        };
        let same: Vec<&LockInfo> = owners
            .iter()
            .filter(|o| o.owner_token == owner.owner_token)
            .collect();
        Ok(Some(LockInfo {
            name: keys.name().to_string(),
            owner_token: owner.owner_token.clone(),
            fencing_token: same.iter().map(|o| o.fencing_token).max().unwrap_or(0),
            ttl: same.iter().filter_map(|o| o.ttl).min(),
            reentrant: owner.reentrant,
            hold_count: owner.hold_count,
            masters: states,
            queue: Vec::new(),
            queue_len: 0,
        }))
    }

    fn undoes_failed_attempts(&self) -> bool {
        true
    }

    fn independent_masters(&self) -> bool {
        true
    }

    fn hold_exists(&self, keys: &LockKeys, hold: &str, reentrant: bool) -> Result<bool> {
        let op = Op::ConfirmHold(keys);
        let mut holding = 0;
        let mut answered = 0;
        let mut errors = Vec::new();
        let call = script_calls::hold_exists_call(keys, hold, reentrant);
        for answer in self.first_replies(call) {
            match answer.reply {
                Ok(value) => {
                    answered += 1;
                    holding += usize::from(matches!(value, redis::Value::Int(1)));
                }
                Err(e) => errors.push(e),
            }
        }
        if holding >= self.quorum {
            return Ok(true);
        }
        // Held on fewer than a quorum: certain only if enough masters said so.
        if answered - holding >= self.masters.len() + 1 - self.quorum {
            return Ok(false);
        }
        Err(self.no_quorum(op, answered, &errors))
    }

    fn force_unlock(&self, keys: &LockKeys, holder: &str) -> Result<bool> {
        // No background retry for the masters we miss: a late delete could
        // remove the next holder's key there, whoever that is.
        let op = Op::ForceUnlock(keys);
        let up = self.masters.iter().filter(|m| !m.is_down()).count();
        if up < self.quorum {
            // Deleting on a minority would change what inspect reports
            // without freeing the lock: refuse before touching any master.
            let errors: Vec<Error> = self
                .masters
                .iter()
                .filter(|m| m.is_down())
                .map(|m| m.skipped())
                .collect();
            return Err(self.no_quorum(op, up, &errors));
        }
        let mut deleted = false;
        let mut errors = Vec::new();
        for answer in self.first_replies(script_calls::force_unlock_call(keys, holder)) {
            match answer.reply {
                Ok(redis::Value::Int(n)) => deleted |= n > 0,
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        let answered = self.masters.len() - errors.len();
        if answered < self.quorum {
            return Err(self.no_quorum(op, answered, &errors));
        }
        Ok(deleted)
    }

    fn fenced_write(&self, write: &FencedWriteArgs<'_>) -> Result<FencedWrite> {
        let op = Op::FencedWrite(write.resource);
        let mut written = 0;
        let mut highest = 0;
        let mut errors = Vec::new();
        for answer in self.first_replies(script_calls::fenced_write_call(write)) {
            match answer.reply.and_then(script_calls::parse_fenced_write) {
                Ok(w) => {
                    written += usize::from(w.written);
                    highest = highest.max(w.highest_token);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.len() > self.masters.len() - self.quorum {
            return Err(self.no_quorum(op, self.masters.len() - errors.len(), &errors));
        }
        Ok(FencedWrite {
            written: written >= self.quorum,
            highest_token: highest,
        })
    }

    fn fenced_read(&self, key: &[u8], resource: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let op = Op::FencedRead(resource);
        let mut best: Option<(u64, Vec<u8>)> = None;
        let mut errors = Vec::new();
        for answer in self.first_replies(script_calls::fenced_read_call(key)) {
            match answer.reply.and_then(script_calls::parse_fenced_read) {
                Ok(Some(found)) if best.as_ref().is_none_or(|b| found.0 > b.0) => {
                    best = Some(found)
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.len() > self.masters.len() - self.quorum {
            return Err(self.no_quorum(op, self.masters.len() - errors.len(), &errors));
        }
        Ok(best)
    }

    fn pubsub_sources(&self) -> Vec<EndpointSource> {
        self.masters
            .iter()
            .map(|m| m.node.pubsub_source())
            .collect()
    }

    fn describe(&self) -> String {
        let all: Vec<String> = self.masters.iter().map(|m| m.node.describe()).collect();
        format!(
            "redlock over {} masters ({})",
            self.masters.len(),
            all.join(", ")
        )
    }
}

#[cfg(test)]
mod tests;
