//! Getting scripts of one slot run, whatever the cluster is doing: the
//! slot moved (`MOVED`: the slot map is read again and the new owner is
//! asked), it is being migrated (`ASK`: the importing node is asked after
//! `ASKING`; `TRYAGAIN`: the script's keys are split between the two
//! nodes, so it waits for the migration to go on), or its master is gone
//! (a refused or broken connection, `CLUSTERDOWN`: the slot map is read
//! again from the other nodes until a replica has taken over).
//!
//! Redirections are followed at once, a few times; everything else (and
//! redirections past those few, as when nodes disagree during a failover)
//! is tried again after a short pause that doubles, until the command
//! timeout is spent. The deadline is checked before each pause, so a
//! request never outlives it by more than one try (a round trip, and a
//! read of the slot map when the master looked gone). What is still
//! unanswered then fails with a `Connection` error: the slot is out of
//! service for now, which the acquire loop of a waiter rides out until its
//! own deadline, as any outage. A reply that refuses a script (`TRYAGAIN`,
//! `ASK`, `MOVED`, `CLUSTERDOWN`) means the script did not run, so sending
//! it again is always safe; after a broken connection only scripts that
//! may run twice go again.
//!
//! Each call is followed on its own: in a pipeline of renewals, one that
//! ran is never sent again because another was redirected.

use std::thread;
use std::time::{Duration, Instant};

use redis::Value;

use super::{Addr, Inner};
use crate::backend::single::resend_safe;
use crate::backend::Call;
use crate::error::{Error, ErrorKind, Result};

/// Redirections followed at once for one request; past these the slot map
/// is unsettled (a failover in progress), and each try waits a little.
const MAX_REDIRECTS: usize = 5;
/// The first pause before trying again, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(250);

/// `WAIT` after the scripts, in the same round trip on the node that ran
/// them.
#[derive(Clone, Copy)]
pub(super) struct WaitFor {
    pub(super) replicas: usize,
    pub(super) timeout: Duration,
}

/// What became of the calls of one slot.
pub(super) struct SlotOutcome {
    /// One per call: its reply (a script's own error stays a
    /// `Value::ServerError`), or why none came.
    pub(super) replies: Vec<Result<Value>>,
    /// With [`WaitFor`]: how many replicas confirmed, after the round trip
    /// that ran the last of the calls.
    pub(super) confirmed: usize,
    /// Calls failed because the node serving the slot could not be reached
    /// (not because the slot was in migration or the cluster down): that
    /// node's other slots would fail the same way now.
    pub(super) unreachable: bool,
}

/// How the cluster answered one script.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// It ran (its reply may still be the script's own error).
    Ran,
    /// The slot is served elsewhere now (by this node, when it said).
    Moved(Option<Addr>),
    /// The slot is being migrated and the script's keys are all gone from
    /// here: ask this node, after `ASKING`.
    Ask(Addr),
    /// The slot is being migrated and the script's keys are on two nodes.
    TryAgain,
    /// The cluster cannot serve the slot now (a master failed and no
    /// replica took over yet).
    Down(String),
}

fn classify(value: &Value) -> Reply {
    let Value::ServerError(err) = value else {
        return Reply::Ran;
    };
    // "MOVED 3999 127.0.0.1:6381", "ASK 3999 127.0.0.1:6381".
    let target = || {
        let addr = err.details()?.split_whitespace().nth(1)?;
        let (host, port) = addr.rsplit_once(':')?;
        Some((host.to_string(), port.parse().ok()?))
    };
    match err.code() {
        "MOVED" => Reply::Moved(target()),
        "ASK" => target().map_or(Reply::Moved(None), Reply::Ask),
        "TRYAGAIN" => Reply::TryAgain,
        "CLUSTERDOWN" => Reply::Down(err.details().unwrap_or_default().to_string()),
        _ => Reply::Ran,
    }
}

/// Whether a reply says the script did not run where it was sent (moved,
/// asked elsewhere, in migration, cluster down): it must go again through
/// [`Inner::run_in_slot`], which follows the slot.
pub(super) fn did_not_run_here(value: &Value) -> bool {
    classify(value) != Reply::Ran
}

/// What one round of tries left to do.
#[derive(Default)]
struct Round {
    /// The node a `MOVED` named (`Some(None)`: it named none).
    moved: Option<Option<Addr>>,
    redirected: bool,
    /// Why a call could not run this time, when not a redirection.
    trouble: Option<Error>,
    /// The slot map must be read again (the master looked gone).
    refresh: bool,
    /// The node could not be reached.
    unreachable: bool,
}

/// The calls of one request, and the `WAIT` after them.
#[derive(Clone, Copy)]
struct Job<'r, 'a> {
    calls: &'r [Call<'a>],
    wait: Option<WaitFor>,
}

/// What the calls of one request got so far.
struct Progress {
    /// One per call, once it ran or failed for good.
    replies: Vec<Option<Result<Value>>>,
    /// Where each call was told to ask next (`ASK`), for one try.
    asked: Vec<Option<Addr>>,
    /// See [`SlotOutcome::confirmed`].
    confirmed: usize,
    /// See [`SlotOutcome::unreachable`].
    unreachable: bool,
}

/// A copy of `call` (calls are sent in groups that change from try to try).
fn copy<'a>(call: &Call<'a>) -> Call<'a> {
    call.clone()
}

impl Inner {
    /// Runs `calls` (all in slot `slot`) on the node that serves the slot,
    /// following it through migrations and failovers within the command
    /// timeout (plus the `WAIT`'s own, if any).
    pub(super) fn run_in_slot(
        &self,
        slot: u16,
        calls: &[Call<'_>],
        wait: Option<WaitFor>,
    ) -> SlotOutcome {
        let started = Instant::now();
        let deadline = started + self.command_timeout + wait.map_or(Duration::ZERO, |w| w.timeout);
        let job = Job { calls, wait };
        let mut progress = Progress {
            replies: calls.iter().map(|_| None).collect(),
            asked: calls.iter().map(|_| None).collect(),
            confirmed: 0,
            unreachable: false,
        };
        let mut redirects = 0;
        let mut pause = FIRST_PAUSE;
        loop {
            let mut round = Round::default();
            let mut to_master = Vec::new();
            let pending: Vec<usize> = (0..calls.len())
                .filter(|&i| progress.replies[i].is_none())
                .collect();
            for i in pending {
                match progress.asked[i].take() {
                    // One at a time: ASKING holds for the next command only.
                    Some(addr) => self.try_on(&addr, true, &[i], job, &mut progress, &mut round),
                    None => to_master.push(i),
                }
            }
            if !to_master.is_empty() {
                match self.master_for(slot) {
                    Ok(addr) => {
                        self.try_on(&addr, false, &to_master, job, &mut progress, &mut round)
                    }
                    Err(e) => round.trouble = Some(e),
                }
            }
            if progress.replies.iter().all(Option::is_some) {
                break;
            }
            if let Some(target) = round.moved.take() {
                self.moved(slot, target);
            }
            if round.redirected {
                redirects += 1;
            }
            let unsettled = redirects > MAX_REDIRECTS;
            if round.trouble.is_none() && !unsettled {
                // A redirection, followed at once.
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                progress.unreachable |= round.unreachable;
                let error = give_up(slot, round.trouble, redirects, now - started);
                for reply in progress.replies.iter_mut().filter(|r| r.is_none()) {
                    *reply = Some(Err(error.clone()));
                }
                break;
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LONGEST_PAUSE);
            if round.refresh {
                // Another node may know who took over; if none answers,
                // the next try says why.
                let _ = self.refresh();
            }
        }
        SlotOutcome {
            replies: progress
                .replies
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::new(ErrorKind::Server, "no reply"))))
                .collect(),
            confirmed: progress.confirmed,
            unreachable: progress.unreachable,
        }
    }

    /// One round trip to `addr` with the calls `indexes` (after `ASKING`
    /// when `asking`), recording what became of each.
    fn try_on(
        &self,
        addr: &Addr,
        asking: bool,
        indexes: &[usize],
        job: Job<'_, '_>,
        progress: &mut Progress,
        round: &mut Round,
    ) {
        let group: Vec<Call<'_>> = indexes.iter().map(|&i| copy(&job.calls[i])).collect();
        let node = match self.node(addr) {
            Ok(node) => node,
            Err(e) => {
                for &i in indexes {
                    progress.replies[i] = Some(Err(e.clone()));
                }
                return;
            }
        };
        let prefix = asking.then_some("ASKING");
        let (unsent, outcome) = {
            // One signal mask per round trip; not over the pauses.
            let _masked = crate::signals::mask();
            let in_flight = match job.wait {
                Some(w) => node.send_then_wait(prefix, &group, w.replicas, w.timeout),
                None => node.send_prefixed(prefix, &group),
            };
            let unsent = !in_flight.was_sent();
            (unsent, node.receive_values(in_flight, None))
        };
        let mut values = match outcome {
            Ok(values) => values,
            // The master may be gone (killed, failing over): a refused
            // connection is an outage, not a redirection. Try again if
            // nothing reached it, or if the scripts may run twice.
            Err(e) if e.kind() == ErrorKind::Connection && (unsent || resend_safe(&group)) => {
                round.trouble = Some(e);
                round.refresh = true;
                round.unreachable = true;
                return;
            }
            Err(e) => {
                if e.kind() == ErrorKind::Connection {
                    // Not sent again, but the next request must not go to
                    // a dead master too.
                    let _ = self.refresh();
                    progress.unreachable = true;
                }
                for &i in indexes {
                    progress.replies[i] = Some(Err(e.clone()));
                }
                return;
            }
        };
        let waited = job.wait.and_then(|_| values.pop());
        let mut ran = false;
        for (&i, value) in indexes.iter().zip(values) {
            match classify(&value) {
                Reply::Ran => {
                    progress.replies[i] = Some(Ok(value));
                    ran = true;
                }
                Reply::Moved(target) => {
                    round.moved = Some(target);
                    round.redirected = true;
                }
                Reply::Ask(target) => {
                    progress.asked[i] = Some(target);
                    round.redirected = true;
                }
                Reply::TryAgain => {
                    round.trouble = Some(
                        Error::new(
                            ErrorKind::Connection,
                            "the slot is being migrated to another node, and the keys of the \
                             lock are on both for now (TRYAGAIN); try again once the migration \
                             goes on",
                        )
                        .answered_busy(),
                    );
                }
                Reply::Down(details) => {
                    round.trouble = Some(
                        Error::new(
                            ErrorKind::Connection,
                            format!(
                                "on {}: the cluster cannot serve the slot now (CLUSTERDOWN \
                                 {details}); a master may have failed before a replica took over",
                                crate::backend::Runner::describe(&*node)
                            ),
                        ),
                        // Not "busy": a cluster that lost a shard for good
                        // (or never had every slot assigned) says so for
                        // ever, so a first attempt fails as on a server that
                        // never answered; waiters already waiting ride it out.
                    );
                    round.refresh = true;
                }
            }
        }
        if ran {
            if let Some(Value::Int(n)) = waited {
                progress.confirmed = usize::try_from(n).unwrap_or(0);
            }
        }
    }
}

/// The error of calls still unanswered when the command timeout is spent.
fn give_up(slot: u16, trouble: Option<Error>, redirects: usize, spent: Duration) -> Error {
    match trouble {
        Some(e) => {
            let error = Error::new(
                e.kind(),
                format!(
                    "{} (slot {slot}, still so after {:.1} s)",
                    e.message(),
                    spent.as_secs_f64()
                ),
            );
            if e.is_answered_busy() {
                error.answered_busy()
            } else {
                error
            }
        }
        None => Error::new(
            ErrorKind::Connection,
            format!(
                "the cluster redirected slot {slot} {redirects} times in {:.1} s: its nodes \
                 disagree on who serves it (a failover in progress?); try again",
                spent.as_secs_f64()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(resp: &str) -> Reply {
        classify(&redis::parse_redis_value(resp.as_bytes()).unwrap())
    }

    #[test]
    fn cluster_replies_are_told_apart() {
        let node = ("127.0.0.1".to_string(), 6381);
        assert_eq!(reply(":1\r\n"), Reply::Ran);
        assert_eq!(reply("-ERR lock is broken\r\n"), Reply::Ran);
        assert_eq!(
            reply("-MOVED 3999 127.0.0.1:6381\r\n"),
            Reply::Moved(Some(node.clone()))
        );
        assert_eq!(reply("-ASK 3999 127.0.0.1:6381\r\n"), Reply::Ask(node));
        assert_eq!(
            reply("-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Reply::TryAgain
        );
        assert_eq!(
            reply("-CLUSTERDOWN The cluster is down\r\n"),
            Reply::Down("The cluster is down".to_string())
        );
        // An ASK without a usable address: read the slot map again.
        assert_eq!(reply("-ASK 3999\r\n"), Reply::Moved(None));
    }
}
