//! Redlock: one lock over N independent masters.
//!
//! Each operation runs the same script as on one node, on every master at
//! once: every request is written before any reply is read, so an operation
//! costs the slowest master, not the sum, and a stopped master costs at most
//! the command timeout. A master that errors or times out is a vote against,
//! never an abort. The lock counts as held on a quorum (N/2+1) only, and
//! only within `ttl - elapsed - drift` of sending the acquire.

use std::time::{Duration, Instant};

use super::scripted::{self, acquire_call, parse_acquire, parse_release, release_call};
use super::single::SingleNode;
use super::{
    AcquireArgs, Attempt, Backend, Call, EndpointSource, ExtendItem, FencedWriteArgs, Released,
    Runner, EXTEND_BATCH,
};
use crate::error::{Error, ErrorKind, Result};
use crate::info::{FencedWrite, LockInfo, MasterState};
use crate::keys::LockKeys;
use crate::validity::drift;
use crate::wait::jitter;

pub(crate) struct Redlock {
    masters: Vec<SingleNode>,
    quorum: usize,
    command_timeout: Duration,
}

/// The replies of one master: all its calls' results, or why it failed.
type MasterReplies = Result<Vec<Result<redis::Value>>>;

impl Redlock {
    pub(crate) fn new(masters: Vec<SingleNode>, command_timeout: Duration) -> Self {
        let quorum = masters.len() / 2 + 1;
        Redlock {
            masters,
            quorum,
            command_timeout,
        }
    }

    /// Sends `calls` to every master, then reads every master's replies,
    /// all against one deadline.
    fn on_all(&self, what: &str, calls: &[Call<'_>]) -> Vec<MasterReplies> {
        let deadline = Instant::now() + self.command_timeout;
        let in_flight: Vec<_> = self.masters.iter().map(|m| m.send(calls)).collect();
        self.masters
            .iter()
            .zip(in_flight)
            .map(|(master, sent)| master.receive(what, sent, Some(deadline)))
            .collect()
    }

    /// The first reply of each master.
    fn first_replies(&self, what: &str, call: Call<'_>) -> Vec<Result<redis::Value>> {
        self.on_all(what, std::slice::from_ref(&call))
            .into_iter()
            .map(|replies| {
                replies.and_then(|mut values| {
                    values.pop().unwrap_or_else(|| {
                        Err(Error::new(ErrorKind::Server, format!("{what}: no reply")))
                    })
                })
            })
            .collect()
    }

    fn no_quorum(&self, what: &str, answered: usize, errors: &[Error]) -> Error {
        let first = errors
            .first()
            .map(|e| format!("; first failure: {e}"))
            .unwrap_or_default();
        Error::new(
            ErrorKind::NoQuorum,
            format!(
                "{what}: no quorum: {answered} of {} masters answered, {} needed{first}",
                self.masters.len(),
                self.quorum
            ),
        )
    }

    /// After a failed attempt: give back what we may have taken, on every
    /// master that granted it or whose answer we did not hear.
    fn undo(&self, keys: &LockKeys, token: &str, reentrant: bool, granted_or_unknown: &[usize]) {
        if granted_or_unknown.is_empty() {
            return;
        }
        let call = release_call(keys, token, reentrant);
        let calls = std::slice::from_ref(&call);
        let deadline = Instant::now() + self.command_timeout;
        let sent: Vec<_> = granted_or_unknown
            .iter()
            .map(|&i| (i, self.masters[i].send(calls)))
            .collect();
        for (i, in_flight) in sent {
            let _ = self.masters[i].receive("undoing a failed acquire", in_flight, Some(deadline));
        }
    }

    /// Raises the fencing counter to `token` on the masters that issued a
    /// lower one, so that a quorum has a counter at least `token`.
    fn write_back_fence(&self, keys: &LockKeys, token: u64, issued: &[(usize, u64)]) -> bool {
        let already = issued.iter().filter(|(_, f)| *f == token).count();
        let behind: Vec<usize> = issued
            .iter()
            .filter(|(_, f)| *f < token)
            .map(|(i, _)| *i)
            .collect();
        if already >= self.quorum || behind.is_empty() {
            return already >= self.quorum;
        }
        let call = scripted::raise_fence_call(keys, token);
        let calls = std::slice::from_ref(&call);
        let deadline = Instant::now() + self.command_timeout;
        let sent: Vec<_> = behind
            .iter()
            .map(|&i| (i, self.masters[i].send(calls)))
            .collect();
        let raised = sent
            .into_iter()
            .map(|(i, in_flight)| {
                self.masters[i].receive("raising the fencing counter", in_flight, Some(deadline))
            })
            .filter(|r| matches!(r, Ok(v) if v.iter().all(|x| x.is_ok())))
            .count();
        already + raised >= self.quorum
    }
}

impl Backend for Redlock {
    fn acquire(&self, args: &AcquireArgs<'_>) -> Result<Attempt> {
        let (keys, ttl) = (args.keys, args.ttl);
        let what = scripted::acquire_what(keys);
        let sent = Instant::now();
        let replies = self.first_replies(&what, acquire_call(args));
        let mut issued = Vec::new();
        let mut held_for = Vec::new();
        let mut unknown = Vec::new();
        let mut errors = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            match reply.and_then(|v| parse_acquire(&what, v)) {
                Ok(Attempt::Acquired(fence)) => issued.push((i, fence)),
                Ok(Attempt::Held(left)) => held_for.push(left),
                Err(e) => {
                    if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Connection) {
                        unknown.push(i);
                    }
                    errors.push(e);
                }
            }
        }
        // Validity is counted after every round trip of the attempt (the
        // fence write-back included): a guard is never handed out with its
        // time already spent.
        let still_valid = || {
            ttl.checked_sub(sent.elapsed())
                .and_then(|left| left.checked_sub(drift(ttl)))
                .is_some_and(|v| !v.is_zero())
        };
        if issued.len() >= self.quorum && still_valid() {
            let fence = issued.iter().map(|(_, f)| *f).max().unwrap_or(0);
            if self.write_back_fence(keys, fence, &issued) && still_valid() {
                return Ok(Attempt::Acquired(fence));
            }
        }
        // Every hold has its own token, so giving back a hold whose outcome
        // is unknown can never touch another (reentrant ones included).
        let mut to_undo: Vec<usize> = issued.iter().map(|(i, _)| *i).collect();
        to_undo.extend(&unknown);
        self.undo(keys, args.hold, args.reentrant, &to_undo);
        if issued.len() + held_for.len() < self.quorum {
            // Too few masters answered for any outcome to be certain.
            return Err(self.no_quorum(&what, issued.len() + held_for.len(), &errors));
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
        let what = scripted::release_what(keys);
        let mut freed = 0;
        let mut still_held = 0;
        let mut answered = 0;
        let mut errors = Vec::new();
        for reply in self.first_replies(&what, release_call(keys, token, reentrant)) {
            match reply.and_then(|v| parse_release(&what, v)) {
                Ok(outcome) => {
                    answered += 1;
                    match outcome {
                        Released::Free => freed += 1,
                        Released::StillHeld => still_held += 1,
                        Released::NotOwner => {}
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if freed + still_held >= self.quorum {
            return Ok(if still_held > freed {
                Released::StillHeld
            } else {
                Released::Free
            });
        }
        if answered == 0 {
            return Err(self.no_quorum(&what, 0, &errors));
        }
        Ok(Released::NotOwner)
    }

    fn extend(&self, items: &[ExtendItem<'_>]) -> Result<Vec<Result<bool>>> {
        let what = format!(
            "extending {} lease(s) on {} masters",
            items.len(),
            self.masters.len()
        );
        // Per master: one batch script per chunk of leases, all chunks in
        // one round trip; then each lease's answer from every master.
        let chunks: Vec<&[ExtendItem<'_>]> = items.chunks(EXTEND_BATCH).collect();
        let calls: Vec<Call<'_>> = chunks
            .iter()
            .map(|c| scripted::extend_batch_call(c))
            .collect();
        let per_master: Vec<Vec<Result<bool>>> = self
            .on_all(&what, &calls)
            .into_iter()
            .map(|replies| match replies {
                Ok(replies) => chunks
                    .iter()
                    .zip(replies)
                    .flat_map(|(chunk, reply)| {
                        match reply
                            .and_then(|v| scripted::parse_extend_batch(&what, chunk.len(), v))
                        {
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
                    match &answers[i] {
                        Ok(true) => confirmed += 1,
                        Ok(false) => {}
                        Err(e) => errors.push(e.clone()),
                    }
                }
                if confirmed >= self.quorum {
                    Ok(true)
                } else if confirmed + errors.len() >= self.quorum {
                    // The silent masters might still confirm: not lost yet.
                    Err(self.no_quorum(&what, self.masters.len() - errors.len(), &errors))
                } else {
                    Ok(false)
                }
            })
            .collect();
        Ok(outcomes)
    }

    fn inspect(&self, keys: &LockKeys) -> Result<Option<LockInfo>> {
        let what = format!("inspecting lock '{}'", keys.name);
        let mut states = Vec::new();
        let mut owners: Vec<LockInfo> = Vec::new();
        for (master, reply) in self
            .masters
            .iter()
            .zip(self.first_replies(&what, scripted::inspect_call(keys)))
        {
            let parsed = reply.and_then(|v| scripted::parse_inspect(&keys.name, &what, v));
            states.push(MasterState {
                server: master.describe(),
                holder: parsed
                    .as_ref()
                    .ok()
                    .and_then(|h| h.as_ref().map(|i| i.owner_token.clone())),
                fencing_token: parsed
                    .as_ref()
                    .ok()
                    .and_then(|h| h.as_ref().map(|i| i.fencing_token)),
                ttl: parsed
                    .as_ref()
                    .ok()
                    .and_then(|h| h.as_ref().and_then(|i| i.ttl)),
                error: parsed.as_ref().err().map(|e| e.to_string()),
            });
            if let Ok(Some(info)) = parsed {
                owners.push(info);
            }
        }
        let quorum_owner = owners.iter().find(|candidate| {
            owners
                .iter()
                .filter(|o| o.owner_token == candidate.owner_token)
                .count()
                >= self.quorum
        });
        let Some(owner) = quorum_owner else {
            if states.iter().all(|s| s.error.is_some()) {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("{what}: no master answered"),
                ));
            }
            return Ok(None);
        };
        let same: Vec<&LockInfo> = owners
            .iter()
            .filter(|o| o.owner_token == owner.owner_token)
            .collect();
        Ok(Some(LockInfo {
            name: keys.name.clone(),
            owner_token: owner.owner_token.clone(),
            fencing_token: same.iter().map(|o| o.fencing_token).max().unwrap_or(0),
            ttl: same.iter().filter_map(|o| o.ttl).min(),
            reentrant: owner.reentrant,
            hold_count: owner.hold_count,
            masters: states,
        }))
    }

    fn undoes_failed_attempts(&self) -> bool {
        true
    }

    fn hold_exists(&self, keys: &LockKeys, hold: &str, reentrant: bool) -> Result<bool> {
        let what = format!("confirming a hold of lock '{}'", keys.name);
        let mut holding = 0;
        let mut answered = 0;
        let mut errors = Vec::new();
        let call = scripted::hold_exists_call(keys, hold, reentrant);
        for reply in self.first_replies(&what, call) {
            match reply {
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
        Err(self.no_quorum(&what, answered, &errors))
    }

    fn force_unlock(&self, keys: &LockKeys) -> Result<bool> {
        let what = format!("force-unlocking lock '{}'", keys.name);
        let replies = self.first_replies(&what, scripted::force_unlock_call(keys));
        if let Some(Err(e)) = replies
            .iter()
            .find(|r| r.is_err())
            .filter(|_| replies.iter().all(|r| r.is_err()))
        {
            return Err(e.clone());
        }
        Ok(replies
            .iter()
            .any(|r| matches!(r, Ok(redis::Value::Int(n)) if *n > 0)))
    }

    fn fenced_write(&self, write: &FencedWriteArgs<'_>) -> Result<FencedWrite> {
        let what = format!("fenced write to '{}'", write.resource);
        let mut written = 0;
        let mut highest = 0;
        let mut errors = Vec::new();
        for reply in self.first_replies(&what, scripted::fenced_write_call(write)) {
            match reply.and_then(|v| scripted::parse_fenced_write(&what, v)) {
                Ok(w) => {
                    written += usize::from(w.written);
                    highest = highest.max(w.highest_token);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.len() > self.masters.len() - self.quorum {
            return Err(self.no_quorum(&what, self.masters.len() - errors.len(), &errors));
        }
        Ok(FencedWrite {
            written: written >= self.quorum,
            highest_token: highest,
        })
    }

    fn fenced_read(&self, key: &[u8], resource: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let what = format!("fenced read of '{resource}'");
        let mut best: Option<(u64, Vec<u8>)> = None;
        let mut errors = Vec::new();
        for reply in self.first_replies(&what, scripted::fenced_read_call(key)) {
            match reply.and_then(|v| scripted::parse_fenced_read(&what, v)) {
                Ok(Some(found)) if best.as_ref().is_none_or(|b| found.0 > b.0) => {
                    best = Some(found)
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.len() > self.masters.len() - self.quorum {
            return Err(self.no_quorum(&what, self.masters.len() - errors.len(), &errors));
        }
        Ok(best)
    }

    fn pubsub_sources(&self) -> Vec<EndpointSource> {
        self.masters.iter().map(Runner::pubsub_source).collect()
    }

    fn describe(&self) -> String {
        let all: Vec<String> = self.masters.iter().map(Runner::describe).collect();
        format!(
            "redlock over {} masters ({})",
            self.masters.len(),
            all.join(", ")
        )
    }
}
